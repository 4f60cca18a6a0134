"""The stand-in image cache: an image whose base is missing too is built on an empty cache (the base
first, each through its own staging directory), and the stale-staging sweep spares live builds.

Small recipes (a scratch image and one ``from`` it) in a temporary cache: no mmdebstrap, no network.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from aibench import standin_images
from aibench.standin_images import Builder, Image, load_recipes, recipe_key


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Builder:
    if os.geteuid() != 0:
        pytest.skip("the stand-in builder needs root (as on the test machine)")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "base.toml").write_text(
        'ref = "docker://example.test/base:1"\nkind = "scratch"\n'
        '[[write]]\npath = "/etc/base-marker"\ncontent = "base\\n"\n'
    )
    (recipes / "child.toml").write_text(
        'ref = "docker://example.test/child:1"\nkind = "from"\nfrom = "docker://example.test/base:1"\n'
        '[[write]]\npath = "/etc/child-marker"\ncontent = "child\\n"\n'
    )
    monkeypatch.setenv("AIBENCH_IMAGE_CACHE", str(tmp_path / "cache"))
    builder = Builder()
    builder.recipes = load_recipes(recipes)
    return builder


def test_an_image_and_its_missing_base_build_on_an_empty_cache(chain: Builder) -> None:
    child = chain.ensure("docker://example.test/child:1")
    assert (child.rootfs / "etc/child-marker").read_text() == "child\n"
    assert (child.rootfs / "etc/base-marker").read_text() == "base\n"  # copied from the base
    base_key = recipe_key(chain.recipes["docker://example.test/base:1"], chain.recipes)
    assert Image(base_key).ready
    assert chain.built == ["docker://example.test/base:1", "docker://example.test/child:1"]
    assert list((standin_images.cache_dir() / "tmp").iterdir()) == []  # no staging left behind
    chain.built.clear()
    assert chain.ensure("docker://example.test/child:1").key == child.key
    assert chain.built == []  # cached: nothing rebuilt


def test_stale_staging_of_dead_builds_only_is_swept(chain: Builder) -> None:
    tmp = standin_images.cache_dir() / "tmp"
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = tmp / f"somekey.{os.getpid()}"
    stale = tmp / f"otherkey.{dead.pid}"
    for directory in (live, stale):
        (directory / "rootfs").mkdir(parents=True)
    standin_images._clean_stale_tmp()
    assert live.is_dir()
    assert not stale.exists()
