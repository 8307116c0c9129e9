"""Line-level dedup (CCNet, LLaMA-3): drop lines whose normalised form occurs more than ``max_count`` times.

CCNet removes every line seen twice or more in a shard (``max_count: 1``); LLaMA-3 removes "lines that appeared more
than 6 times in each bucket of 30M documents" (``max_count: 6``).  Three ways to run it:

* **corpus stage** (:class:`dedup.line_stage.LineDedupStage`, the CommonCrawl default): after every input is
  written, count every line per bucket across all inputs, then rewrite each docs file.  Exact, LLaMA-3's rule.
* **step with counts** (``mode: counts``): the per-input step looks lines up in the counts that
  ``winnow dedup lines`` wrote over an earlier run's docs (two runs over the same inputs).
* **step, per-input approximation** (``mode: per_input_approx``): counts restart at every input, so a line is
  dropped once it was seen more than ``max_count`` times *in the same input file* (the first ``max_count`` copies
  stay).  Cheap and needs no earlier pass, but it is not LLaMA-3's rule: a navigation line repeated once in each of
  10,000 WARCs is never dropped.

A document's bucket is ``xxh3(id) % n_buckets`` (``n_buckets = ceil(docs / bucket_docs)``), so buckets hold about
``bucket_docs`` documents, do not depend on the order of inputs, and a step finds a document's bucket from its id.
Lookups use a sorted ``uint64`` array of ``(bucket, line hash)`` keys and :func:`numpy.searchsorted` (``np.isin``
re-sorts the set on every call: ~784 ms per document at 1e6 frequent lines, see bench/results.md).

Normalisation (``normalization``): ``ccnet`` (default) is CCNet's ``normalize_for_dedup``: the line the reference
implementation of line dedup hashes, and the conservative choice (ASCII punctuation and accents count, so code
lines or formulas that differ only by punctuation stay distinct).  ``datatrove`` is datatrove's ``simplify_text``
(punctuation and accents stripped, whitespace collapsed): it merges more boilerplate variants
("Home | About" = "Home About").  Documents left with no text are rejected (``line_dedup:empty``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import xxhash

from dedup.text import partition_salts, simplify_text
from pipelines.core import storage
from pipelines.core.folder import Folder
from pipelines.core.layout import read_json
from pipelines.core.steps import Step, StepResult, set_column, texts

_BUCKET_MULT = np.uint64(0x9E3779B97F4A7C15)
NORMALIZATIONS = ("ccnet", "datatrove")
MODES = ("per_input_approx", "counts")
EMPTY_REASON = "line_dedup:empty"

# CCNet's cc_net/text_normalizer.py (facebookresearch/cc_net, MIT licence): UNICODE_PUNCT's keys and the control
# characters 0-31 and 127-159, which ``normalize_for_dedup`` deletes after lowercasing and mapping digits to 0.
_CCNET_UNICODE_PUNCT = "，。、„”“«»１」「《》´∶：？！（）；–—．～’…━〈〉【】％►"
_CCNET_NON_PRINTING = "".join(map(chr, list(range(0, 32)) + list(range(127, 160))))
_CCNET_DELETE_RE = re.compile("[" + re.escape(_CCNET_UNICODE_PUNCT + _CCNET_NON_PRINTING) + "]")
_DIGIT_RE = re.compile(r"\d")


def ccnet_normalize(line: str) -> str:
    """CCNet's ``normalize_for_dedup``: strip, lowercase, every digit → 0, delete CJK/typographic punctuation and
    control characters (ASCII punctuation, accents and inner spacing are kept)."""
    line = line.strip()
    if not line:
        return line
    return _CCNET_DELETE_RE.sub("", _DIGIT_RE.sub("0", line.lower()))


def normalizer(name: str) -> Callable[[str], str]:
    """The line normalisation called ``name`` (``ccnet`` or ``datatrove``)."""
    if name == "ccnet":
        return ccnet_normalize
    if name == "datatrove":
        return simplify_text
    raise ValueError(f"line dedup normalization must be one of {NORMALIZATIONS}, got {name!r}")


def line_hash(line: str, normalization: str = "ccnet") -> int | None:
    """64-bit hash of the normalised line; None for a line that normalises to nothing (never dropped)."""
    norm = normalizer(normalization)(line)
    return xxhash.xxh3_64_intdigest(norm.encode("utf-8", "surrogatepass")) if norm else None


def bucket_of(doc_id: str, n_buckets: int) -> int:
    return xxhash.xxh3_64_intdigest(doc_id.encode("utf-8", "surrogatepass")) % max(1, n_buckets)


def combined_keys(bucket: int | np.ndarray, h: np.ndarray) -> np.ndarray:
    """One uint64 key per (bucket, line hash): the hash mixed with the bucket, so each bucket counts apart."""
    return h.astype(np.uint64) ^ (np.asarray(bucket).astype(np.uint64) * _BUCKET_MULT)


def doc_line_keys(
    doc_id: str, text: str, n_buckets: int, norm: Callable[[str], str], salt: int = 0
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The lines of one document, their (bucket, hash) keys, and which lines have a key (non-empty normal form).

    ``salt``: the document's partition (:func:`dedup.text.partition_salts` of its language), mixed into every key,
    so a line counts only with the same line of documents of the same partition."""
    lines = text.split("\n")
    hashes = np.zeros(len(lines), np.uint64)
    has = np.zeros(len(lines), bool)
    for i, line in enumerate(lines):
        n = norm(line)
        if n:
            hashes[i] = xxhash.xxh3_64_intdigest(n.encode("utf-8", "surrogatepass"))
            has[i] = True
    keys = combined_keys(bucket_of(doc_id, n_buckets), hashes)
    return lines, (keys ^ np.uint64(salt) if salt else keys), has


def sorted_contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``keys`` found in the sorted array ``sorted_keys`` (binary search; the set itself is never re-sorted)."""
    if not len(sorted_keys) or not len(keys):
        return np.zeros(len(keys), bool)
    at = np.searchsorted(sorted_keys, keys)
    at[at == len(sorted_keys)] = 0
    return sorted_keys[at] == keys


def drop_lines(lines: list[str], drop: np.ndarray) -> str:
    """The text without the dropped lines (stripped, as CCNet leaves no leading/trailing blank lines)."""
    return "\n".join(x for x, d in zip(lines, drop.tolist(), strict=True) if not d).strip()


def row_salts(batch: pa.Table, partition_by: str | None) -> np.ndarray:
    """Each row's partition salt (0 everywhere when unpartitioned or the batch lacks the column)."""
    if not partition_by or partition_by not in batch.column_names:
        return np.zeros(batch.num_rows, np.uint64)
    return partition_salts(batch.column(partition_by).to_pylist())


def load_frequent(counts_dir: str, max_count: int, normalization: str) -> tuple[np.ndarray, int, str | None]:
    """Sorted keys counted more than ``max_count`` times by ``winnow dedup lines``, the bucket count and the
    column the counts were partitioned by (``counts_dir``: a local folder or an ``s3://`` / ``gs://`` URI)."""
    import pyarrow.parquet as pq

    folder = Folder(counts_dir)
    meta = read_json(
        folder.uri("meta.json"),
        f"no line counts in {counts_dir}: run `winnow dedup lines --input <docs> --counts {counts_dir}` first, "
        "or use mode: per_input_approx",
    )
    if meta.get("normalization", "ccnet") != normalization:
        raise ValueError(
            f"{counts_dir} was counted with normalization {meta.get('normalization')!r}, the step uses "
            f"{normalization!r}: recount or change the step's setting"
        )
    parts = [
        o.path
        for o in folder.list(suffix=".parquet", recursive=False)
        if storage.basename(o.path).startswith("counts-")
    ]
    keys = []
    for path in parts:
        fs, inner = storage.resolve(path)
        t = pq.read_table(inner, filesystem=fs, columns=["key"], filters=[("count", ">", max_count)])
        keys.append(t.column("key").to_numpy())
    frequent = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.uint64)
    return frequent, int(meta["buckets"]), (meta.get("settings") or {}).get("partition_by")


@dataclass
class LineDedup(Step):
    """Transform: remove lines repeated more than ``max_count`` times, per input (``per_input_approx``) or from
    corpus counts (``counts``); see the module docstring for what each mode means."""

    kind: ClassVar[str] = "transform"
    reads: ClassVar[tuple[str, ...]] = ("id", "text")

    max_count: int = 6
    mode: str = "per_input_approx"
    counts_dir: str | None = None
    normalization: str = "ccnet"
    #: per_input_approx: count lines apart per value of this column (``lang``); counts mode reads it from the
    #: counts' own settings (what ``winnow dedup lines`` was run with)
    partition_by: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        normalizer(self.normalization)
        if self.mode not in MODES:
            raise ValueError(f"line_dedup mode must be one of {MODES}, got {self.mode!r}")
        if (self.mode == "counts") != bool(self.counts_dir):
            raise ValueError("line_dedup: mode counts needs counts_dir, and counts_dir needs mode counts")

    def setup(self) -> None:
        self._norm = normalizer(self.normalization)
        self._partition = self.partition_by
        if self.mode == "counts":
            self._frequent, self._buckets, self._partition = load_frequent(
                self.counts_dir or "", self.max_count, self.normalization
            )
        self._seen: Counter = Counter()

    def start_input(self, path: str) -> None:
        # per-input counts: carrying counts over from whatever inputs this worker processed before would make an
        # input's output depend on scheduling (Ray vs local, resumed runs)
        self._seen = Counter()

    def _drop_mask(self, doc_id: str, text: str, salt: int) -> tuple[list[str], np.ndarray]:
        if self.mode == "counts":
            lines, keys, has = doc_line_keys(doc_id, text, self._buckets, self._norm, salt)
            return lines, sorted_contains(self._frequent, keys) & has
        lines, keys, has = doc_line_keys("", text, 1, self._norm, salt)
        drop = np.zeros(len(lines), bool)
        for i in np.flatnonzero(has).tolist():
            k = int(keys[i])
            self._seen[k] += 1
            drop[i] = self._seen[k] > self.max_count
        return lines, drop

    def _missing_partition(self) -> str:
        """Why a batch without the partition column cannot be counted, and what to use instead."""
        col = self._partition
        where = (
            f"counts_dir {self.counts_dir} was counted with `winnow dedup lines --partition-by {col}`"
            if self.mode == "counts"
            else f"partition_by: {col}"
        )
        fix = (
            "recount without --partition-by for this step"
            if self.mode == "counts"
            else "partition_by: null here"
        )
        return (
            f"{self.name}: {where}, but the batch has no such column (in the commoncrawl recipe this step runs "
            f"before LID adds lang).  Use instead the line_dedup corpus stage (corpus_stages.line_dedup."
            f"partition_by: {col}), which runs after LID and counts over the whole source, or {fix}"
        )

    def process(self, batch: pa.Table) -> StepResult:
        out, reasons, changed = [], [], 0
        if self._partition and self._partition not in batch.column_names:
            raise ValueError(self._missing_partition())
        salts = row_salts(batch, self._partition)
        for doc_id, text, salt in zip(
            batch.column("id").to_pylist(), texts(batch), salts.tolist(), strict=True
        ):
            lines, drop = self._drop_mask(doc_id or "", text, salt)
            if drop.any():
                changed += 1
                text = drop_lines(lines, drop)
            out.append(text)
            reasons.append(EMPTY_REASON if not text.strip() else None)
        table = set_column(batch, "text", pa.array(out, batch.schema.field("text").type))
        return StepResult(table, reasons, changed)
