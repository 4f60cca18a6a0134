"""Extract a small English corpus from the docstrings of Python 3.11's standard library.

Parses (never imports) the stdlib's pure-Python modules with :mod:`ast`, in sorted module order,
and splits each docstring into paragraphs. Prose paragraphs (1-3 sentences, 40-400 characters,
no code, lists or markup) become documents; the docstrings of one definition in eight (chosen
by a hash of its dotted name) are held out and give the queries: their first sentence. Documents
and queries are deduplicated and picked by a hash of their text, so the output is the same on
every run. Text from the Python standard library, (c) Python Software Foundation, PSF License.

Usage: python -m aibench.datasets.corpus_extract [--out data/corpus/python-docs.jsonl]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
import sysconfig
import tokenize
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from aibench.files import atomic_open
from aibench.paths import PROJECT_ROOT

DEFAULT_OUT = PROJECT_ROOT / "data" / "corpus" / "python-docs.jsonl"
SKIP_TOP = {"antigravity", "encodings", "ensurepip", "idlelib", "lib2to3", "pydoc_data", "test", "this"}
SKIP_DIRS = {"test", "tests", "idle_test"}
CODE_MARKS = (
    ">>>",
    "::",
    "``",
    "--",
    "->",
    "==",
    "_",
    "{",
    "[",
    "|",
    "\\",
    "#",
    "@",
    "$",
    "%",
    "http",
    "XXX",
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
HELD_OUT = 8
DEFS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def module_files(stdlib: Path) -> Iterator[tuple[str, Path]]:
    """(dotted module name, source file) of the public pure-Python stdlib modules, sorted."""
    for top in sorted(sys.stdlib_module_names):
        if top.startswith("_") or top in SKIP_TOP:
            continue
        if (stdlib / f"{top}.py").is_file():
            yield top, stdlib / f"{top}.py"
        elif (stdlib / top / "__init__.py").is_file():
            for path in sorted((stdlib / top).rglob("*.py")):
                parts = path.relative_to(stdlib).with_suffix("").parts
                if any(p in SKIP_DIRS or (p.startswith("_") and p != "__init__") for p in parts):
                    continue
                yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def docstrings(prefix: str, node: ast.AST) -> Iterator[tuple[str, str]]:
    """(dotted name, docstring) of the module and every class and function in it, in source order."""
    if isinstance(node, ast.Module) and (doc := ast.get_docstring(node)):
        yield prefix, doc
    for child in ast.iter_child_nodes(node):
        name = f"{prefix}.{child.name}" if isinstance(child, DEFS) else prefix
        if isinstance(child, DEFS) and (doc := ast.get_docstring(child)):
            yield name, doc
        yield from docstrings(name, child)


def paragraphs(doc: str) -> list[str]:
    """The docstring's blank-line separated blocks, each joined into one line; '' for a block
    that is indented or a list (code, arguments, bullets)."""
    out = []
    for block in re.split(r"\n[ \t]*\n", doc.strip()):
        lines = block.splitlines()
        listy = any(ln[:1].isspace() or ln[:1] in "-*+:" or re.match(r"\d+[.)] ", ln) for ln in lines)
        out.append("" if listy else " ".join(block.split()))
    return out


def is_prose(text: str, lo: int, hi: int, max_sentences: int) -> bool:
    if not (lo <= len(text) <= hi and text.isascii() and text[0].isupper() and text.endswith(".")):
        return False
    if any(mark in text for mark in CODE_MARKS) or re.match(r"\w+\(", text) or len(text.split()) < 6:
        return False
    plain = sum(c.isalpha() or c in " ,.'" for c in text) / len(text)
    return plain >= 0.93 and len(SENTENCE_END.split(text)) <= max_sentences


def candidates(stdlib: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Deduplicated (id, text) document and query candidates, in module order."""
    docs: list[tuple[str, str]] = []
    queries: list[tuple[str, str]] = []
    seen: set[str] = set()  # texts (lower case) and ids: a name defined twice keeps its first docstring

    def add(out: list[tuple[str, str]], ident: str, text: str) -> None:
        if text.lower() not in seen and ident not in seen:
            seen.update((text.lower(), ident))
            out.append((ident, text))

    for module, path in module_files(stdlib):
        with tokenize.open(path) as src, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(src.read(), str(path))
        for name, doc in docstrings(module, tree):
            pars = paragraphs(doc)
            if int(_hash(name), 16) % HELD_OUT == 0:
                first = SENTENCE_END.split(pars[0])[0]
                if is_prose(first, 30, 200, 1):
                    add(queries, f"{name}#q", first)
                continue
            for k, par in enumerate(pars):
                if is_prose(par, 40, 400, 3):
                    add(docs, f"{name}#{k}", par)
    return docs, queries


def pick(items: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """The n items whose text hashes lowest (a fixed pseudo-random sample), kept in input order."""
    chosen = {i for i, _ in sorted(enumerate(items), key=lambda it: _hash(it[1][1]))[:n]}
    return [item for i, item in enumerate(items) if i in chosen]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    if sys.version_info[:2] != (3, 11):
        parser.error("the shipped corpus is made from Python 3.11's standard library; run it with 3.11")
    docs, queries = candidates(Path(sysconfig.get_paths()["stdlib"]))
    docs = pick(docs, args.documents)
    in_docs = " | ".join(text.lower() for _, text in docs)
    queries = pick([q for q in queries if q[1].lower() not in in_docs], args.queries)
    if len(docs) < args.documents or len(queries) < args.queries:
        sys.exit(f"corpus_extract: only {len(docs)} documents and {len(queries)} queries found")
    with atomic_open(args.out, "w") as out:
        for role, items in (("document", docs), ("query", queries)):
            for ident, text in items:
                out.write(json.dumps({"id": ident, "text": text, "role": role}) + "\n")
    print(f"corpus_extract: {len(docs)} documents, {len(queries)} queries -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
