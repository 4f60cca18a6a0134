"""Prompt sets: synthetic prompts of a controlled length (seeded words) or a prompt file."""

from __future__ import annotations

import random
from pathlib import Path

from aibench.files import INPUT_LIMIT, read_input

_WORD_TEXT = """
time year people way day man thing woman life child world school state family student group
country problem hand part place case week company system program question work government number
night point home water room mother area money story fact month lot right study book eye job word
business issue side kind head house service friend father power hour game line end member law
car city community name president team minute idea kid body information back parent face others
level office door health person art war history party result change morning reason research girl
guy moment air teacher force education
"""
WORDS = tuple(_WORD_TEXT.split())


def synthetic(count: int, input_words: int, seed: int) -> list[str]:
    """``count`` distinct prompts of ``input_words`` words each (a fixed instruction, then words)."""
    rng = random.Random(seed)
    head = "Continue this list of words with a short story:"
    return [f"{head} {' '.join(rng.choices(WORDS, k=max(1, input_words)))}" for _ in range(count)]


def from_file(path: str | Path) -> list[str]:
    """One prompt per non-empty line of ``path``."""
    data = read_input(path, INPUT_LIMIT, "prompt_file")
    prompts = [line.strip() for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"{path}: no prompts (one per line)")
    return prompts
