"""``winnow models train|eval|lid-eval`` and ``winnow score`` (``make models`` runs ``train``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from pipelines.core.commands import add_command, add_subcommands

log = logging.getLogger(__name__)

SCORE_STEPS = ("perplexity", "wikiref", "roberta")


def format_reports(reports: dict[str, Any]) -> str:
    lines = []
    for name, rep in reports.items():
        h = rep["heldout"]
        size = sum(rep["files"].values())
        verdict = "meets" if rep["meets_bar"] else "BELOW"
        line = f"{name}: held-out AUC {h['auc']} on {h['n']} texts ({verdict} its bar {rep['bar_auc']}); {size:,} bytes"
        if "heldout_web_buckets" in rep:
            line += f"; held-out web pages per bucket {rep['heldout_web_buckets']}"
        lines.append(line)
    return "\n".join(lines)


def how_to_use(models_dir: str, trained: list[str]) -> str:
    base = os.path.abspath(models_dir)
    keys = {
        "kenlm": ("perplexity", "model_dir", os.path.join(base, "kenlm")),
        "wikiref": ("wikiref", "model_path", os.path.join(base, "wikiref", "model.ftz")),
        "roberta": ("roberta", "model_dir", os.path.join(base, "roberta")),
    }
    lines = [
        "To use them, put this in a copy of pipelines/configs/commoncrawl.yaml and run with CONFIG=<copy>:",
        "steps:",
    ]
    lines += [f"  {keys[m][0]}: {{{keys[m][1]}: {keys[m][2]}}}" for m in trained if m in keys]
    if "semantic" in trained:
        lines.append(f"semantic_dedup: {{model_dir: {os.path.join(base, 'semantic')}}}")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from classifiers.train import TrainSettings, train_all

    s = TrainSettings(
        models_dir=args.models_dir,
        reference=args.reference or [],
        web=args.web or [],
        labels=args.labels,
        seed=args.seed,
        roberta_init=args.roberta_init,
        lang=args.lang,
    )
    if args.only:
        s.only = args.only
    reports = train_all(s)
    print(json.dumps(reports, indent=2) if args.json else format_reports(reports))
    print(f"models written to {os.path.abspath(s.models_dir)}")
    print(how_to_use(s.models_dir, list(reports)))
    return 0


def cmd_domains(args: argparse.Namespace) -> int:
    """``winnow models domains``: the code/math classifier from your folders or label file (``make models-domains``)."""
    from classifiers.domains import train_domains

    folders = (args.code or [], args.math or [], args.prose or [])
    record = train_domains(*folders, args.models_dir, labels=args.labels, seed=args.seed)
    h = record["heldout"]
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(
            f"domains: held-out AUC code {h['code']['auc']} ({h['code']['positives']} code texts), math "
            f"{h['math']['auc']} ({h['math']['positives']} math texts) of {h['routing']['n']}; routing accuracy "
            f"{h['routing']['accuracy']}; {'meets' if record['meets_bar'] else 'BELOW'} its bar {record['bar_auc']}"
        )
    path = os.path.join(os.path.abspath(args.models_dir), "domains", "model.ftz")
    print(f"use it: `steps: {{domains: {{model_path: {path}}}}}` in a copy of the commoncrawl config")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from classifiers.evaluate import measure, read_labels
    from classifiers.steps import absolute_path, locate_model

    location = locate_model(absolute_path(args.path), args.model)
    texts, labels = read_labels(args.labels)
    if labels.min() == labels.max():
        raise ValueError(f"{args.labels}: every line has label {labels[0]}; AUC needs both classes")
    metrics = measure(args.model, location, texts, labels)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(
            f"{args.model} ({location}) on {args.labels}: "
            + ", ".join(f"{k} {v}" for k, v in metrics.items())
        )
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    """``winnow models topics``: the topic classifier from rule-labelled corpora and/or the user's label file."""
    from classifiers.topic_train import TopicSettings, train_topics

    rep = train_topics(
        TopicSettings(
            models_dir=args.models_dir, corpus=args.corpus or [], labels=args.labels, seed=args.seed
        )
    )
    h = rep["heldout"]
    worst = sorted(h["per_class"].items(), key=lambda kv: kv[1]["f1"])[:3]
    print(
        f"topics: held-out accuracy {h['accuracy']}, macro-F1 {h['macro_f1']} on {h['n']} texts; worst "
        + ", ".join(f"{t} (F1 {m['f1']})" for t, m in worst)
        + f"\nmodel written to {os.path.abspath(os.path.join(args.models_dir, 'topics', 'model.ftz'))}; use it: "
        "steps.topics.model_path in a copy of the CommonCrawl config"
    )
    return 0


def cmd_lid_eval(args: argparse.Namespace) -> int:
    from classifiers.lid_eval import evaluate, format_eval

    print(format_eval(evaluate(args.tsv), per_language=args.per_language))
    return 0


def cmd_token_kl(args: argparse.Namespace) -> int:
    """Build a token_kl reference from Parquet documents (e.g. OUTPUT/<source>/docs) or JSONL with a text column."""
    import glob
    import json as _json

    import pyarrow.parquet as pq

    from classifiers.token_kl import build_reference

    texts: list[str] = []
    for root in args.input:
        files = (
            [root]
            if os.path.isfile(root)
            else sorted(
                glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True)
                + glob.glob(os.path.join(root, "**", "*.jsonl"), recursive=True)
            )
        )
        for path in files:
            if path.endswith(".parquet"):
                texts += [t for t in pq.read_table(path, columns=["text"]).column("text").to_pylist() if t]
            else:
                with open(path, encoding="utf-8") as f:
                    texts += [t for t in (_json.loads(line).get("text") for line in f if line.strip()) if t]
    if not texts:
        raise ValueError(f"no documents with text under {args.input}")
    meta = build_reference(
        texts, args.out, percentile=args.percentile, min_tokens=args.min_tokens, origin=", ".join(args.input)
    )
    print(
        f"token_kl reference: {meta['reference_tokens']:,} tokens from {meta['train_docs']:,} documents; cut "
        f"{meta['cut']} (p{args.percentile} of {meta['heldout_pieces']:,} held-out pieces) in {args.out}\n"
        f"use it: steps.token_kl.reference_dir: {os.path.abspath(args.out)}  and  "
        f"steps.token_kl_filter.max: {meta['cut']}"
    )
    return 0


def add_models_command(cmds: Any, name: str, help_line: str, handler: Any) -> Any:
    """A ``winnow models <name>`` command: bad input is exit 2 with the reason (:func:`guarded`)."""
    return add_command(cmds, name, help_line, guarded(handler))


def add_trainer(cmds: Any, name: str, help_line: str, handler: Any, models_dir: str, labels: str) -> Any:
    """A ``winnow models <name>`` trainer: every one takes where the model goes, a label file and a seed."""
    p = add_models_command(cmds, name, help_line, handler)
    p.add_argument("--models-dir", default="models", help=models_dir)
    p.add_argument("--labels", default=None, help=labels)
    p.add_argument("--seed", type=int, default=0)
    return p


def add_parser(sub: Any) -> None:
    """``winnow models train|eval|lid-eval`` and ``winnow score``."""
    models = add_command(sub, "models", "train and evaluate Winnow's quality models")
    cmds = add_subcommands(models, "models_command")
    t = add_trainer(
        cmds,
        "train",
        "train KenLM, wiki-reference and RoBERTa from your text, measured on held-out documents",
        cmd_train,
        "where the models go",
        "JSONL of text,label (e.g. from a larger model) to train on too",
    )
    t.add_argument(
        "--lang",
        default="en",
        help="the language to train on (a lid.176 code): pages of other languages are left out and KenLM goes "
        "to <models-dir>/kenlm/<lang>, the sub-folder steps.perplexity.languages reads",
    )
    t.add_argument(
        "--reference",
        action="append",
        help="folder of reference-quality text (repeatable): MediaWiki XML(.bz2), .txt books, .tex papers, "
        "JSONL/Parquet with a text column",
    )
    t.add_argument(
        "--web", action="append", help="folder of web pages (repeatable): WARC, HTML, JSONL/Parquet"
    )
    t.add_argument("--only", nargs="*", choices=["kenlm", "wikiref", "roberta", "semantic"], default=None)
    t.add_argument("--roberta-init", default=None, help="local Hugging Face RoBERTa checkpoint to fine-tune")
    t.add_argument("--json", action="store_true", help="print the quality records as JSON")
    d = add_trainer(
        cmds,
        "domains",
        "train the code/math page classifier (code_prob, math_prob) from your folders or a fastText label file",
        cmd_domains,
        "the model goes to <models-dir>/domains/",
        "fastText lines `__label__code|math|prose <text>`",
    )
    d.add_argument(
        "--code", action="append", help="GitHub repositories, or StackExchange dumps (posts with code)"
    )
    d.add_argument("--math", action="append", help="arXiv LaTeX sources, or math StackExchange dumps")
    d.add_argument("--prose", action="append", help="general text: web pages (WARC/HTML), Wikipedia, books")
    d.add_argument("--json", action="store_true", help="print the quality record as JSON")
    e = add_models_command(
        cmds, "eval", "AUC/accuracy of a model on a labelled JSONL file (text, label)", cmd_eval
    )
    e.add_argument("--model", required=True, choices=list(SCORE_STEPS))
    e.add_argument(
        "--labels", required=True, help="JSONL with text and label (1 = reference quality, 0 = not)"
    )
    e.add_argument("--path", default=None, help="model file/folder (default: the shipped model)")
    e.add_argument("--json", action="store_true")
    k = add_models_command(
        cmds,
        "token-kl",
        "build the token_kl reference distribution (and its cut) from your documents",
        cmd_token_kl,
    )
    k.add_argument(
        "--input",
        action="append",
        required=True,
        help="Parquet docs folder (e.g. output/wikipedia/docs) or JSONL with text (repeatable)",
    )
    k.add_argument("--out", default="models/token_kl", help="output folder (counts.npy, reference.json)")
    k.add_argument("--percentile", type=float, default=99.0, help="the cut: this percentile of held-out KL")
    k.add_argument("--min-tokens", type=int, default=100, help="documents shorter than this are not scored")
    tp = add_trainer(
        cmds,
        "topics",
        "train the fastText topic classifier from rule-labelled corpora or your __label__<topic> file",
        cmd_topics,
        "the model goes to <models-dir>/topics/",
        "your file of `__label__<topic> text` lines",
    )
    tp.add_argument(
        "--corpus",
        action="append",
        help="folder to label by rule (repeatable): MediaWiki dumps, WARC/HTML/JSONL pages, StackExchange "
        "Posts.xml, books, arXiv",
    )
    lid = add_models_command(
        cmds,
        "lid-eval",
        "accuracy of Winnow's LID vs datatrove's LanguageFilter on a Tatoeba TSV",
        cmd_lid_eval,
    )
    lid.add_argument("--tsv", required=True, help="Tatoeba/LASER TSV (language, sentence)")
    lid.add_argument("--per-language", action="store_true")
    s = add_command(
        sub,
        "score",
        "add model score columns to Parquet documents (id, text)",
        guarded(cmd_score),
        local_only=True,
    )
    s.add_argument("--input", required=True, help="a Parquet file, or a folder of them")
    s.add_argument("--output", required=True, help="folder for the scored files (same names as the inputs)")
    s.add_argument(
        "--steps", default=",".join(SCORE_STEPS), help="comma-separated: perplexity,wikiref,roberta"
    )
    s.add_argument("--kenlm", default=None, help="KenLM model folder (default: the shipped one)")
    s.add_argument("--wikiref", default=None, help="fastText model file (default: the shipped one)")
    s.add_argument("--roberta", default=None, help="RoBERTa checkpoint folder (default: the shipped one)")


def guarded(handler: Any) -> Any:
    """Bad input (a missing folder, too little text, an unreadable label file) is exit 2 with the reason."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (FileNotFoundError, ValueError) as exc:
            prog = "winnow score" if handler is cmd_score else "winnow models"
            print(f"{prog}: {exc}", file=sys.stderr)
            return 2

    return run


def build_score_steps(names: list[str], paths: dict[str, str | None]) -> list[Any]:
    from classifiers.steps import Perplexity, RobertaQuality, WikiRefScore

    unknown = [n for n in names if n not in SCORE_STEPS]
    if unknown or not names:
        raise ValueError(f"--steps: unknown {unknown or names}; choose from {', '.join(SCORE_STEPS)}")
    make = {
        "perplexity": lambda: Perplexity(model_dir=paths.get("perplexity")),
        "wikiref": lambda: WikiRefScore(model_path=paths.get("wikiref")),
        "roberta": lambda: RobertaQuality(model_dir=paths.get("roberta")),
    }
    return [make[n]() for n in names]


def score_file(path: str, out_dir: str, steps: list[Any], batch_rows: int = 1024) -> str:
    """Score one Parquet file of documents (``id``, ``text``) into ``out_dir/<same name>``, atomically."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    missing = {"id", "text"} - set(pf.schema_arrow.names)
    if missing:
        raise ValueError(f"{path}: no {sorted(missing)} column (winnow score reads Parquet with id and text)")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, os.path.basename(path))
    tmp = out + ".tmp"
    writer = None
    try:
        for batch in pf.iter_batches(batch_size=batch_rows):
            import pyarrow as pa

            table = pa.Table.from_batches([batch])
            for step in steps:
                table = step(table).table
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        if writer is None:  # an empty file: same (empty) rows, with the score columns
            table = pf.schema_arrow.empty_table()
            for step in steps:
                table = step(table).table
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.close()
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def cmd_score(args: argparse.Namespace) -> int:
    """``winnow score``: score each Parquet file of ``--input`` into ``--output``."""
    steps = build_score_steps(
        [s.strip() for s in args.steps.split(",") if s.strip()],
        {"perplexity": args.kenlm, "wikiref": args.wikiref, "roberta": args.roberta},
    )
    if os.path.isdir(args.input):
        files = sorted(os.path.join(args.input, f) for f in os.listdir(args.input) if f.endswith(".parquet"))
    elif os.path.exists(args.input):
        files = [args.input]
    else:
        raise FileNotFoundError(f"--input {args.input} does not exist")
    if not files:
        raise FileNotFoundError(f"--input {args.input} holds no .parquet file")
    for path in files:
        print(f"{path} -> {score_file(path, args.output, steps)}")
    return 0
