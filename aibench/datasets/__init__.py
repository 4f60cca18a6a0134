"""Vector datasets for the vector-database client."""
