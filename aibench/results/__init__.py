"""Results: the common schema, aggregation into tidy tables."""

from aibench.results.schema import Metric, PointResult, summary_document, write_point

__all__ = ["Metric", "PointResult", "summary_document", "write_point"]
