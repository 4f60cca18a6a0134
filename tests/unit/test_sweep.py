"""Sweep expansion: cartesian product times repeats, stable readable point ids."""

from __future__ import annotations

import pytest

from aibench.recipes import expand, point_id
from aibench.recipes.sweep import combinations, deployment_id


def test_cartesian_product_times_repeats() -> None:
    points = expand(
        {"clients": 50, "pipeline": 1, "tests": "get"}, {"clients": [1, 10], "pipeline": [1, 16, 64]}, 2
    )
    assert len(points) == 2 * 3 * 2
    combos = {(p.params["clients"], p.params["pipeline"], p.repeat) for p in points}
    assert len(combos) == 12
    assert all(p.params["tests"] == "get" for p in points)
    assert points[0].id == "clients-1_pipeline-1_r0"
    assert points[1].id == "clients-1_pipeline-1_r1"
    assert points[-1].id == "clients-10_pipeline-64_r1"


def test_no_sweep_gives_one_point_per_repeat() -> None:
    points = expand({"clients": 5}, {}, 3)
    assert [p.id for p in points] == ["base_r0", "base_r1", "base_r2"]
    assert all(p.params == {"clients": 5} for p in points)


def test_ids_are_wildcard_safe() -> None:
    assert point_id({"tests": "get,set"}, 0) == "tests-get+set_r0"
    assert point_id({"flag": True, "ratio": 0.5}, 1) == "flag-true_ratio-0.5_r1"
    long = point_id({f"p{i}": "x" * 30 for i in range(8)}, 0)
    assert len(long) <= 120 and long.endswith("_r0")


def test_colliding_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="collide"):
        expand({}, {"tests": ["get,set", "get;set"]}, 1)


def test_linked_lists_vary_together_within_the_product() -> None:
    sweep = {"tensor_parallel_size": [1, 2, 4], "max_num_seqs": [64, 256], "gpus": [1, 2, 4]}
    combos = combinations(sweep, [["tensor_parallel_size", "gpus"]])
    assert len(combos) == 3 * 2  # the linked pair is one axis of three values
    pairs = [(c["tensor_parallel_size"], c["gpus"]) for c in combos]
    assert pairs == [(1, 1), (1, 1), (2, 2), (2, 2), (4, 4), (4, 4)]
    assert [c["max_num_seqs"] for c in combos[:2]] == [64, 256]
    assert all(list(c) == list(sweep) for c in combos)  # keys in the sweep's order
    assert len(combinations(sweep)) == 3 * 2 * 3  # unlinked: the full product
    assert combinations({}) == [{}]


def test_deployment_ids_are_point_ids_without_repeat() -> None:
    assert deployment_id({"io_threads": 2}) == "io_threads-2"
    assert deployment_id({"tensor_parallel_size": 2, "gpus": 2}) == "tensor_parallel_size-2_gpus-2"
