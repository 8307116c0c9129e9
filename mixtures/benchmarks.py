"""Benchmark n-gram hash sets: the shipped ones (``mixtures/benchmarks/``) and ``winnow benchmarks add`` for more.

A hash set is three files in one folder: ``<name>.npy`` (the sorted, distinct uint64 hashes of the benchmark's word
n-grams, see :mod:`mixtures.decontam` for normalisation and hash), ``<name>.items.npy`` (int32, per hash the index
of the first item that has it) and ``<name>.json`` (n, item ids and counts, normalisation, hash function, origin).
Shipping hashes instead of benchmark text keeps the repository free of test items while decontamination works from
a fresh clone.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dedup.text import WordHasher
from mixtures.decontam import (
    HASH_FUNCTION,
    MIN_DISTINCT_WORDS,
    NORMALISATION,
    NGramIndex,
    item_ngrams,
    normalise_words,
)
from mixtures.spec import DecontamSpec, available
from pipelines.core.commands import add_command, add_subcommands
from pipelines.core.layout import read_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _flatten(value: object) -> Iterable[str]:
    if value is None:
        return
    if isinstance(value, list | tuple):
        for v in value:
            yield from _flatten(v)
    else:
        yield str(value)


def read_items(name: str, path: str, fields: Iterable[str]) -> Iterable[tuple[str, str]]:
    """(item id, text) per benchmark item from JSONL or CSV; the id is ``task_id``/``id`` when present, else the
    line number.  The configured fields are joined in order, lists flattened."""
    fields = tuple(fields)
    if not os.path.exists(path):
        raise FileNotFoundError(f"benchmark {name}: {path} not found (fix decontaminate.benchmarks)")
    with open(path, encoding="utf-8", newline="") as f:
        rows: Iterable[dict] = (
            csv.DictReader(f) if path.endswith(".csv") else (json.loads(line) for line in f if line.strip())
        )
        for i, row in enumerate(rows, 1):
            missing = [k for k in fields if k not in row]
            if missing:
                raise ValueError(
                    f"benchmark {name} ({path}) item {i} has no field(s) {missing}; it has {sorted(row)}"
                )
            text = " ".join(t for k in fields for t in _flatten(row[k]))
            yield str(row.get("task_id") or row.get("id") or i), text


@dataclass
class BenchmarkHashes:
    """One benchmark's n-gram hashes (sorted, distinct) with the item each came from."""

    name: str
    n: int
    keys: np.ndarray
    items: np.ndarray
    item_ids: list[str]
    short_items: int = 0  # items with fewer than n words: they cannot be matched by n-grams
    degenerate: int = 0  # n-grams left out: fewer than MIN_DISTINCT_WORDS distinct non-number words
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @classmethod
    def from_items(
        cls, name: str, items: Iterable[tuple[str, str]], n: int = 13, meta: dict[str, Any] | None = None
    ) -> BenchmarkHashes:
        hasher = WordHasher()
        ids: list[str] = []
        hashes: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        short = degenerate = 0
        for item_id, text in items:
            ids.append(item_id)
            words = normalise_words(text)
            if len(words) < n:
                short += 1
                continue
            h, skipped = item_ngrams(words, n, hasher)
            degenerate += skipped
            hashes.append(h)
            owners.append(np.full(len(h), len(ids) - 1, np.int32))
        allh = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        keys, first = np.unique(allh, return_index=True)  # an n-gram of several items belongs to the first
        owner = np.concatenate(owners)[first] if owners else np.zeros(0, np.int32)
        return cls(name, n, keys, owner, ids, short, degenerate, dict(meta or {}))

    def save(self, folder: str) -> str:
        """Write the three files (atomically each); returns the .npy path."""
        from pipelines.core.folder import Folder
        from pipelines.core.layout import write_json_atomic

        for suffix, arr in ((".npy", self.keys), (".items.npy", self.items)):
            with Folder(folder).open_output(self.name + suffix) as fh:
                np.save(fh, arr, allow_pickle=False)
        write_json_atomic(
            os.path.join(folder, self.name + ".json"),
            {
                "format": FORMAT_VERSION,
                "name": self.name,
                "n": self.n,
                "ngrams": len(self.keys),
                "items": self.n_items,
                "items_shorter_than_n": self.short_items,
                "degenerate_ngrams_skipped": self.degenerate,
                "min_distinct_words": MIN_DISTINCT_WORDS,
                "normalisation": NORMALISATION,
                "hash": HASH_FUNCTION,
                "item_ids": self.item_ids,
                **self.meta,
            },
        )
        return os.path.join(folder, self.name + ".npy")

    @classmethod
    def load(cls, folder: str, name: str) -> BenchmarkHashes:
        meta_path = os.path.join(folder, name + ".json")
        meta = read_json(
            meta_path,
            f"benchmark {name}: no {meta_path} (create it with `winnow benchmarks add {name} --path ITEMS "
            f"--fields F1,F2 --dir {folder}`)",
        )
        keys = np.load(os.path.join(folder, name + ".npy"), allow_pickle=False)
        items = np.load(os.path.join(folder, name + ".items.npy"), allow_pickle=False)
        if keys.dtype != np.uint64 or len(keys) != len(items) or np.any(keys[1:] <= keys[:-1]):
            raise ValueError(
                f"benchmark {name} in {folder}: {name}.npy is not a sorted distinct uint64 array matching "
                f"{name}.items.npy; rebuild it with `winnow benchmarks add`"
            )
        extra = {
            k: v
            for k, v in meta.items()
            if k not in ("name", "n", "item_ids", "items_shorter_than_n", "degenerate_ngrams_skipped")
        }
        return cls(
            name,
            int(meta["n"]),
            keys,
            items.astype(np.int32),
            [str(i) for i in meta["item_ids"]],
            int(meta.get("items_shorter_than_n", 0)),
            int(meta.get("degenerate_ngrams_skipped", 0)),
            extra,
        )


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def add_benchmark(name: str, path: str, fields: list[str], folder: str, n: int = 13) -> BenchmarkHashes:
    """Hash a benchmark's items (JSONL/CSV) into ``folder``: what ``winnow benchmarks add`` does."""
    meta = {
        "built_from": {"file": os.path.basename(path), "sha256": file_sha256(path), "fields": list(fields)},
    }
    hashes = BenchmarkHashes.from_items(name, read_items(name, path, fields), n, meta)
    hashes.save(folder)
    return hashes


def load_index(spec: DecontamSpec) -> NGramIndex:
    """The decontamination index of a mixture: hash sets loaded by name, item files hashed now."""
    sets = [
        BenchmarkHashes.from_items(b.name, read_items(b.name, b.path, b.fields), spec.n)
        if b.fields
        else BenchmarkHashes.load(b.path, b.name)
        for b in spec.benchmarks
    ]
    index = NGramIndex(sets, spec.n)
    log.info("decontamination index: %d %d-grams from %s", len(index), spec.n, index.items)
    return index


def add_parser(sub: Any) -> None:
    bench = add_command(sub, "benchmarks", "benchmark n-gram hash sets for mixture decontamination")
    cmds = add_subcommands(bench, "benchmarks_command")
    add = add_command(
        cmds, "add", "hash a benchmark's items (JSONL or CSV) into a folder a mixture can name", run_add
    )
    add.add_argument("name", help="the name mixtures use (decontaminate.benchmarks: [NAME])")
    add.add_argument(
        "--path", required=True, help="the items, one JSON object per line, or a CSV with a header"
    )
    add.add_argument("--fields", required=True, help="comma-separated fields whose text is checked, in order")
    add.add_argument("--dir", default="benchmarks", help="folder to write NAME.npy/.items.npy/.json into")
    add.add_argument("--n", type=int, default=13, help="words per n-gram (the mixture's decontaminate.n)")
    ls = add_command(cmds, "list", "hash sets available to mixtures", run_list)
    ls.add_argument(
        "--dir", action="append", default=[], help="extra folder(s) (decontaminate.benchmark_dirs)"
    )


def run_list(args: argparse.Namespace) -> int:
    for name, folder in available(args.dir).items():
        h = BenchmarkHashes.load(folder, name)
        print(f"{name:<16}{h.n:>3}-grams {len(h.keys):>9,} hashes {h.n_items:>7,} items  {folder}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    fields = [f.strip() for f in args.fields.split(",") if f.strip()]
    try:
        h = add_benchmark(args.name, args.path, fields, args.dir, args.n)
    except (FileNotFoundError, ValueError) as exc:
        print(f"winnow benchmarks: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.name}: {len(h.keys):,} {h.n}-gram hashes from {h.n_items:,} items "
        f"({h.short_items} shorter than {h.n} words) -> {os.path.abspath(args.dir)}\n"
        f"use it in a mixture YAML:\n  decontaminate:\n    n: {h.n}\n"
        f"    benchmark_dirs: [{args.dir}]\n    benchmarks: [gsm8k, hellaswag, humaneval, mmlu, {args.name}]"
    )
    return 0
