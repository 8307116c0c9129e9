"""Build one stage's mixture: curated docs → predicate → decontamination → token-budget sampling → shards + manifest.

``OUTPUT/mixtures/<stage>/`` gets ``shards/shard-*.parquet`` (only training rows, so ``shards/*.parquet`` loads in
HF datasets or Polars), ``decontamination/matches.parquet`` and ``manifest.json``; the folder is written under a
temporary name and swapped in whole, so a reader never sees half a stage.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mixtures.benchmarks import load_index
from mixtures.decontam import DECONTAM_SCHEMA, NO_DECONTAMINATION, Match, decontam_summary, source_matches
from mixtures.sample import SHARD_SCHEMA, ShardWriter, sample_tokens, selection_table
from mixtures.spec import EmptyStage, MixtureError, MixtureSpec, SourceSpec
from mixtures.tokens import TokenCounter, ensure_source_tokens, get_counter
from mixtures.topics import TopicPlan, TopicRuleError, plan_topics, sample_by_topic, topic_of, topic_report
from pipelines.core.layout import write_json_atomic

log = logging.getLogger(__name__)

SHARDS, DECONTAMINATION = "shards", "decontamination"  # sub-folders of OUTPUT/mixtures/<stage>/


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def file_fingerprint(path: str) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"bytes": os.path.getsize(path), "sha256": h.hexdigest()}


@dataclass
class EntryState:
    spec: SourceSpec
    status: str = "ok"
    note: str = ""
    candidates: int = 0
    contaminated: int = 0
    ids: list[str] = field(default_factory=list)
    n_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    topics: dict[str, str] | None = None  # id -> topic, when the origin has a topic column
    topic_plan: TopicPlan | None = None

    @property
    def available(self) -> int:
        return int(self.n_tokens.sum())

    @property
    def capacity(self) -> float:
        """Tokens the entry can give under its epoch cap (at its topic targets, when it has topic rules)."""
        if self.topic_plan is not None and self.topic_plan.applied:
            return self.topic_plan.capacity(self.spec.max_epochs)
        return self.available * self.spec.max_epochs


def _origin_views(
    con: duckdb.DuckDBPyConnection,
    output: str,
    origins: list[str],
    counter: TokenCounter,
    fingerprints: dict[str, Any],
    docs_files: dict[str, list[str]],
) -> dict[str, list[str]]:
    """A view ``o_<i>`` per origin (docs, deduplicated by id, joined with n_tokens); returns their columns."""
    columns: dict[str, list[str]] = {}
    for i, origin in enumerate(origins):
        docs, sidecars, _ = ensure_source_tokens(os.path.join(output, origin), counter)
        if not docs:
            continue
        docs_files[origin] = docs
        for d in docs:
            fingerprints[os.path.relpath(d, output)] = file_fingerprint(d)
        dl = "[" + ", ".join(_q(d) for d in docs) + "]"
        tl = "[" + ", ".join(_q(t) for t in sidecars) + "]"
        names = [
            r[0]
            for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({dl}, union_by_name=true)").fetchall()
        ]
        exclude = " EXCLUDE (n_tokens)" if "n_tokens" in names else ""
        con.execute(
            f"CREATE VIEW o_{i} AS SELECT d.*{exclude}, t.n_tokens FROM "
            f"(SELECT * FROM read_parquet({dl}, union_by_name=true, filename=true) "
            f"QUALIFY row_number() OVER (PARTITION BY id ORDER BY filename) = 1) d "
            f"JOIN (SELECT id, any_value(n_tokens) AS n_tokens FROM read_parquet({tl}) GROUP BY id) t "
            f"USING (id)"
        )
        columns[origin] = [c for c in names if c != "n_tokens"] + ["n_tokens"]
    return columns


def _entry_view(
    con: duckdb.DuckDBPyConnection, idx: int, origin_idx: int, spec: SourceSpec, columns: list[str]
) -> str:
    extra = ", ".join(f"{v} AS {_ident(k)}" for k, v in spec.missing_columns.items() if k not in columns)
    con.execute(f"CREATE VIEW e_{idx} AS SELECT *{', ' + extra if extra else ''} FROM o_{origin_idx}")
    return f"e_{idx}"


def _where(spec: SourceSpec) -> str:
    return f"WHERE ({spec.where})" if spec.where else ""


def _rank_column(spec: SourceSpec, columns: list[str]) -> str | None:
    return next((c for c in spec.rank_by if c in columns or c in spec.missing_columns), None)


def _candidates(
    con: duckdb.DuckDBPyConnection, view: str, spec: SourceSpec, columns: list[str], stage: str
) -> pa.Table:
    sql = f"SELECT id, n_tokens FROM {view} {_where(spec)}"
    rank = _rank_column(spec, columns)
    if spec.top_fraction is not None:
        if rank is None:
            raise MixtureError(
                f"mixture {stage}: source {spec.name!r}: none of rank_by {list(spec.rank_by)} is a "
                f"column of {spec.origin} ({', '.join(columns)})"
            )
        sql = (
            f"SELECT id, n_tokens FROM (SELECT id, n_tokens, {_ident(rank)} AS _r FROM {view} {_where(spec)}) "
            f"QUALIFY row_number() OVER (ORDER BY _r DESC NULLS LAST, id) "
            f"<= ceil(count(*) OVER () * {spec.top_fraction})"
        )
    try:
        return con.sql(f"SELECT id, n_tokens FROM ({sql}) ORDER BY id").to_arrow_table()
    except (duckdb.BinderException, duckdb.ParserException, duckdb.ConversionException) as exc:
        raise MixtureError(
            f"mixture {stage}: source {spec.name!r} (from {spec.origin}): predicate {spec.where!r} does not apply "
            f"to its docs: {str(exc).splitlines()[0]}\n  columns of {spec.origin}: {', '.join(columns)}\n"
            f"  (a column a source may lack can be given a value under missing_columns)"
        ) from None


def _decontaminate(st: EntryState, matches: dict[str, Match]) -> list[dict[str, Any]]:
    """Drop the candidates of ``st`` that match a benchmark (``matches``: the origin's per-file sidecars)."""
    spec = st.spec
    bad = [i for i, d in enumerate(st.ids) if d in matches]
    rows = [
        {"mix_source": spec.name, "origin": spec.origin, "id": st.ids[i], **matches[st.ids[i]].__dict__}
        for i in bad
    ]
    if bad:
        drop = set(bad)
        keep = [i for i in range(len(st.ids)) if i not in drop]
        st.ids = [st.ids[i] for i in keep]
        st.n_tokens = st.n_tokens[keep]
    st.contaminated = len(bad)
    return rows


def _budget(spec: MixtureSpec, states: list[EntryState]) -> tuple[float, dict[str, float], float]:
    """(budget, effective share per present entry, largest budget the supply allows at those shares)."""
    present = [s for s in states if s.status == "ok" and s.spec.share > 0]
    missing = [s for s in states if s.status != "ok" and s.spec.share > 0]
    if missing and spec.missing_sources == "error":
        raise MixtureError(
            f"mixture {spec.stage}: no documents for "
            + ", ".join(f"{s.spec.name} ({s.note})" for s in missing)
            + "; run their pipelines or set missing_sources: "
            "renormalise"
        )
    if not present and any(s.candidates or s.note == "the predicate selects no documents" for s in states):
        absent = [s.spec.name for s in states if s.note.startswith("no ")]
        raise EmptyStage(
            f"mixture {spec.stage}: empty: no curated document satisfies its selection ("
            + "; ".join(f"{s.spec.name}: {s.note}" for s in states if not s.note.startswith("no "))
            + (f"; no curated output yet for {', '.join(absent)}" if absent else "")
            + ")"
        )
    if not present:
        raise MixtureError(
            f"mixture {spec.stage}: none of its sources has documents under OUTPUT ("
            + ", ".join(f"{s.spec.name}: {s.note}" for s in states)
            + ")"
        )
    total_share = sum(s.spec.share for s in present)
    eff = {s.spec.name: s.spec.share / total_share for s in present}
    max_budget = min(s.capacity / eff[s.spec.name] for s in present)
    budget = float(max_budget if spec.total_tokens is None else spec.total_tokens)
    if budget > max_budget * (1 + 1e-9):
        lines = [
            f"  {s.spec.name:<16} target {eff[s.spec.name] * budget:>16,.0f}  achievable "
            f"{s.available * s.spec.max_epochs:>16,.0f}  ({s.available:,} tokens x {s.spec.max_epochs} epochs)"
            for s in present
            if eff[s.spec.name] * budget > s.capacity
        ]
        msg = (
            f"mixture {spec.stage}: total_tokens {budget:,.0f} is impossible under the epoch caps; the largest "
            f"budget at the target shares is {max_budget:,.0f}. Short sources:\n" + "\n".join(lines)
        )
        if spec.on_shortfall == "error":
            raise MixtureError(
                msg + "\n  set on_shortfall: scale (or take_available), raise max_epochs, or lower "
                "total_tokens"
            )
        log.warning("%s\n  on_shortfall=%s", msg, spec.on_shortfall)
        if spec.on_shortfall == "scale":
            budget = max_budget
    return budget, eff, max_budget


def build_stage(spec: MixtureSpec, output: str, counter: TokenCounter | None = None) -> dict[str, Any]:
    """Build ``OUTPUT/mixtures/<stage>/`` and return its manifest."""
    output = os.path.abspath(output)
    counter = counter or get_counter(spec.tokenizer)
    con = duckdb.connect()
    fingerprints: dict[str, Any] = {}
    origins = sorted({s.origin for s in spec.sources})
    docs_files: dict[str, list[str]] = {}
    columns = _origin_views(con, output, origins, counter, fingerprints, docs_files)
    index = load_index(spec.decontaminate) if spec.decontaminate and spec.decontaminate.benchmarks else None
    if index is None:
        log.warning(NO_DECONTAMINATION, spec.stage)
    bench_fp = {
        b.name: {
            "path": b.path,
            **file_fingerprint(b.path if b.fields else os.path.join(b.path, b.name + ".npy")),
        }
        for b in (spec.decontaminate.benchmarks if spec.decontaminate else ())
    }
    states: list[EntryState] = []
    decontam_rows: list[dict[str, Any]] = []
    matches: dict[str, dict[str, Match]] = {}  # per origin: contaminated docs by id, from per-file sidecars
    for i, s in enumerate(spec.sources):
        st = EntryState(s)
        states.append(st)
        if s.origin not in columns:
            st.status, st.note = "missing", f"no {s.origin}/docs/*.parquet under {output}"
            continue
        view = _entry_view(con, i, origins.index(s.origin), s, columns[s.origin])
        cand = _candidates(con, view, s, columns[s.origin], spec.stage)
        st.ids = cand.column("id").to_pylist()
        st.n_tokens = cand.column("n_tokens").to_numpy(zero_copy_only=False).astype(np.int64)
        st.candidates = len(st.ids)
        if index is not None and st.ids:
            if s.origin not in matches:
                matches[s.origin] = source_matches(docs_files[s.origin], index)
            decontam_rows += _decontaminate(st, matches[s.origin])
        st.topics = topic_of(con, view, columns[s.origin]) if st.ids else None
        try:
            st.topic_plan = plan_topics(s.topics, st.ids, st.n_tokens, st.topics, s.origin)
        except TopicRuleError as exc:
            raise MixtureError(f"mixture {spec.stage}: source {s.name!r}: {exc}") from None
        if not st.ids:
            st.status = "missing"
            st.note = (
                "the predicate selects no documents" if not st.candidates else "all candidates contaminated"
            )
    try:
        budget, eff, max_budget = _budget(spec, states)
    except EmptyStage:  # what an earlier build wrote no longer matches the mixture: it goes
        stale = os.path.join(output, "mixtures", spec.stage)
        if os.path.isdir(stale):
            shutil.rmtree(stale)
            log.warning(
                "mixture %s: removed the previous build (%s): the stage now selects nothing",
                spec.stage,
                stale,
            )
        raise

    selections, per_source = [], []
    for st in states:
        s = st.spec
        target = eff.get(s.name, 0.0) * budget
        cap = st.capacity
        take = min(target, cap)
        if st.topic_plan is not None and st.topic_plan.applied and st.topics is not None:
            sampled = sample_by_topic(st.ids, st.n_tokens, st.topics, st.topic_plan, take, spec.seed, s.name)
        else:
            sampled = sample_tokens(st.ids, st.n_tokens, take, spec.seed, s.name)
        if len(sampled.ids):
            selections.append(selection_table(s.origin, s.name, sampled, spec.seed))
        status = st.status if st.status != "ok" or target <= cap * (1 + 1e-9) else "short"
        per_source.append(
            {
                "name": s.name,
                "from": s.origin,
                "where": s.where,
                "status": status,
                "note": st.note,
                "ranked_by": _rank_column(s, columns.get(s.origin, [])) if s.top_fraction else None,
                "top_fraction": s.top_fraction,
                "target_share": s.share,
                "effective_target_share": round(eff.get(s.name, 0.0), 6),
                "max_epochs": s.max_epochs,
                "candidate_documents": st.candidates,
                "contaminated_documents": st.contaminated,
                "available_documents": len(st.ids),
                "available_tokens": st.available,
                "target_tokens": round(target),
                "realised_tokens": sampled.tokens,
                "shortfall_tokens": max(0, round(target - sampled.tokens)) if status == "short" else 0,
                "documents": len(sampled.ids),
                "unique_documents": len(set(sampled.ids)),
                "epochs": round(sampled.tokens / st.available, 4) if st.available else 0.0,
                **topic_report(st.topic_plan, sampled, st.topics),
            }
        )
    total = sum(p["realised_tokens"] for p in per_source)
    for p in per_source:
        p["realised_share"] = round(p["realised_tokens"] / total, 6) if total else 0.0
        if p["status"] == "ok" and abs(p["realised_tokens"] - p["target_tokens"]) > 0.01 * budget:
            # whole documents cannot meet the share: they are long next to the target (a book in a small budget)
            p["status"] = "off_target"
            p["note"] = (
                f"documents too coarse for {p['target_tokens']:,} target tokens "
                f"({p['available_documents']:,} documents, {p['available_tokens']:,} tokens); raise total_tokens"
            )

    final = os.path.join(output, "mixtures", spec.stage)
    tmp = os.path.join(output, "mixtures", f".{spec.stage}.tmp-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    try:
        os.makedirs(os.path.join(tmp, SHARDS))
        os.makedirs(os.path.join(tmp, DECONTAMINATION))
        shards = _write_shards(con, selections, origins, os.path.join(tmp, SHARDS), spec.shard_max_tokens)
        for sh in shards:
            sh["file"] = f"{SHARDS}/{sh['file']}"
        pq.write_table(
            pa.Table.from_pylist(decontam_rows, schema=DECONTAM_SCHEMA),
            os.path.join(tmp, DECONTAMINATION, "matches.parquet"),
            compression="zstd",
        )
        manifest = {
            "stage": spec.stage,
            "mixture_file": spec.path,
            "seed": spec.seed,
            "tokenizer": counter.fingerprint,
            "total_tokens_requested": spec.total_tokens if spec.total_tokens is not None else "max",
            "total_tokens_budget": round(budget),
            "max_budget_at_target_shares": round(max_budget),
            "on_shortfall": spec.on_shortfall,
            "realised_tokens": total,
            "documents": sum(p["documents"] for p in per_source),
            "sources": per_source,
            "shards": shards,
            "decontamination": decontam_summary(spec.stage, index, decontam_rows),
            "inputs": {
                "mixture": file_fingerprint(spec.path) if spec.path else None,
                "docs": fingerprints,
                "benchmarks": bench_fp,
            },
        }
        write_json_atomic(os.path.join(tmp, "manifest.json"), manifest)
        old = None
        if os.path.exists(final):
            old = final + f".old-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _write_shards(
    con: duckdb.DuckDBPyConnection,
    selections: list[pa.Table],
    origins: list[str],
    folder: str,
    max_tokens: int,
) -> list[dict[str, Any]]:
    writer = ShardWriter(folder, max_tokens)
    if not selections:
        return writer.shards
    con.register("sel", pa.concat_tables(selections))
    used = sorted(set(pa.concat_tables(selections).column("origin").to_pylist()))
    parts = [
        f"SELECT s.shuffle_key, s.id, d.source, d.url, d.text, d.meta, s.n_tokens, s.mix_source, s.epoch "
        f"FROM sel s JOIN o_{origins.index(o)} d ON s.origin = {_q(o)} AND s.id = d.id"
        for o in used
    ]
    sql = (
        f"SELECT id, source, url, text, meta, n_tokens, mix_source, epoch FROM ({' UNION ALL '.join(parts)}) "
        "ORDER BY shuffle_key, mix_source, id, epoch"
    )
    for batch in con.sql(sql).to_arrow_reader(4096):
        writer.write(pa.Table.from_batches([batch]).cast(SHARD_SCHEMA))
    writer.flush()
    return writer.shards
