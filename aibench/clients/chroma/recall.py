"""Exact nearest neighbours with numpy, in Chroma's three spaces, and recall@k against them.

Chroma's distances: l2 = squared Euclidean, cosine = 1 - cosine similarity, ip = 1 - inner product.
"""

from __future__ import annotations

import numpy as np


def distances(documents: np.ndarray, queries: np.ndarray, space: str) -> np.ndarray:
    """Q x N distance matrix in ``space``."""
    if space == "cosine":
        documents = documents / np.linalg.norm(documents, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    dots = queries.astype(np.float64) @ documents.astype(np.float64).T
    if space == "l2":
        return (
            (queries.astype(np.float64) ** 2).sum(1)[:, None]
            - 2 * dots
            + (documents.astype(np.float64) ** 2).sum(1)
        )
    return 1.0 - dots


def exact_neighbours(documents: np.ndarray, queries: np.ndarray, k: int, space: str) -> np.ndarray:
    """Q x k indices of each query's k nearest documents, nearest first."""
    d = distances(documents, queries, space)
    part = np.argpartition(d, min(k, d.shape[1] - 1), axis=1)[:, :k]
    order = np.take_along_axis(d, part, axis=1).argsort(axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def recall_at_k(found: list[int], exact: np.ndarray) -> float:
    """|found ∩ exact| / k for one query (k = len(exact))."""
    return len(set(found) & set(int(i) for i in exact)) / len(exact)
