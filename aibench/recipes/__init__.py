"""Recipes and config: load, validate against schemas, merge overrides, expand sweeps into points."""

from aibench.recipes.loader import (
    ClientRecipe,
    Experiment,
    Plan,
    ServiceRecipe,
    load_any,
    load_client,
    load_config,
    load_experiment,
    load_plan,
    load_service,
    plan_summary,
)
from aibench.recipes.sweep import Point, expand, point_id

__all__ = [
    "ClientRecipe",
    "Experiment",
    "Plan",
    "Point",
    "ServiceRecipe",
    "expand",
    "load_any",
    "load_client",
    "load_config",
    "load_experiment",
    "load_plan",
    "load_service",
    "plan_summary",
    "point_id",
]
