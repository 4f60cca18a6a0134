"""Vector datasets for the vector-database client: seeded synthetic clusters, or a shipped .npz.

A .npz dataset holds ``documents`` (N x d) and ``queries`` (Q x d), float16 or float32; the shipped
one (data/datasets/minilm-python-docs.npz) is real text embeddings, made offline by
``make embeddings`` (aibench.datasets.embed_corpus), so runs never need torch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aibench.errors import ConfigError
from aibench.files import INPUT_LIMIT, read_input
from aibench.paths import data_dir


@dataclass(frozen=True)
class VectorDataset:
    name: str
    documents: np.ndarray  # float32, N x d
    queries: np.ndarray  # float32, Q x d
    source: str  # where it came from, for the summary


def synthetic(count: int, queries: int, dimension: int, clusters: int, seed: int) -> VectorDataset:
    """Gaussian clusters (unit-variance noise around N(0, 4) centres): documents and held-out queries."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 2.0, (clusters, dimension))

    def draw(n: int) -> np.ndarray:
        return (centres[rng.integers(0, clusters, n)] + rng.normal(0.0, 1.0, (n, dimension))).astype(
            np.float32
        )

    documents, held_out = draw(count), draw(queries)
    source = (
        f"synthetic:count={count},queries={queries},dimension={dimension},clusters={clusters},seed={seed}"
    )
    return VectorDataset("synthetic", documents, held_out, source)


def from_file(path: Path, limit: int, queries: int) -> VectorDataset:
    """The first ``limit`` documents (0 = all) and ``queries`` queries of an .npz dataset."""
    raw = io.BytesIO(read_input(path, INPUT_LIMIT, "dataset_file"))
    try:
        data = np.load(raw, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # not an .npz (numpy tells by its magic bytes)
        raise ConfigError(f"{path} (dataset_file): not a NumPy .npz file ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ConfigError(f"{path} (dataset_file): a single array, not an .npz with documents and queries")
    with data:
        missing = {"documents", "queries"} - set(data.files)
        if missing:
            raise ConfigError(f"{path}: not a vector dataset (missing arrays: {', '.join(sorted(missing))})")
        documents = data["documents"].astype(np.float32)
        held_out = data["queries"].astype(np.float32)
    if documents.ndim != 2 or held_out.ndim != 2 or documents.shape[1] != held_out.shape[1]:
        raise ConfigError(
            f"{path}: documents {documents.shape} and queries {held_out.shape} must be N x d, Q x d"
        )
    documents = documents[:limit] if limit else documents
    return VectorDataset(path.stem, documents, held_out[:queries], f"file:{path.name}")


def load(p: dict[str, Any]) -> VectorDataset:
    """The dataset a client's params name: ``synthetic``, a shipped name, or ``dataset_file``."""
    if p["dataset"] == "synthetic":
        return synthetic(p["count"], p["queries"], p["dimension"], p["clusters"], p["seed"])
    shipped = data_dir() / "datasets" / f"{p['dataset']}.npz"
    path = Path(p["dataset_file"]) if p["dataset"] == "file" else shipped
    return from_file(path, p["count"], p["queries"])
