"""Monitoring: Prometheus file_sd target registration, reading a point's window back."""
