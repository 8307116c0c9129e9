"""``winnow models train|lid-eval`` (``make models`` runs ``train``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipelines.core.commands import add_command, add_subcommands


def format_reports(reports: dict[str, Any]) -> str:
    lines = []
    for name, rep in reports.items():
        if rep.get("skipped"):
            lines.append(f"{name}: up to date (skipped)")
            continue
        if name == "kenlm":
            for lang, m in rep.items():
                if isinstance(m, dict):
                    lines.append(
                        f"kenlm[{lang}]: {m['order']}-gram on {m['reference_lines']:,} lines, vocab {m['vocab_size']}; "
                        f"median perplexity held-out reference {m.get('median_ppl_heldout_reference')}, "
                        f"web {m.get('median_ppl_web', 'n/a')}; bucket cut-offs (p30/p60 of "
                        f"{m['web_sample']} web docs) {m['cutoffs']}"
                    )
        elif name == "wikiref":
            h = rep["heldout"]
            lines.append(
                f"wikiref: fastText on {rep['train']} balanced docs; held-out n={h['n']} precision "
                f"{h['precision']} recall {h['recall']} accuracy {h['accuracy']} AUC {h['auc']}"
            )
        elif name == "roberta":
            h = rep["heldout_vs_labels"]
            line = (
                f"roberta: {rep['train']} docs, losses {rep['losses']}; held-out n={h['n']} accuracy "
                f"{h['accuracy']} AUC {h['auc']} (vs distilled labels)"
            )
            if "heldout_vs_source" in rep:
                t = rep["heldout_vs_source"]
                line += f"; vs source: accuracy {t['accuracy']} AUC {t['auc']}"
            lines.append(line)
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    models = add_command(sub, "models", "train and evaluate Winnow's quality models")
    cmds = add_subcommands(models, "models_command")
    t = add_command(cmds, "train", "train the default models (skips those up to date)", run_train)
    t.add_argument("--models-dir", default="models")
    t.add_argument("--reference", default=None, help="folder of reference text (default: ../shared/corpus)")
    t.add_argument("--shared", default=None, help="corpus folder (default: ../shared/corpus, else fixtures)")
    t.add_argument("--only", nargs="*", choices=["kenlm", "wikiref", "roberta"], default=None)
    t.add_argument("--roberta-init", default=None, help="local Hugging Face RoBERTa checkpoint to fine-tune")
    t.add_argument("--roberta-labels", default=None, help="JSONL of text,label to train RoBERTa on")
    t.add_argument("--force", action="store_true")
    t.add_argument("--json", action="store_true", help="print the reports as JSON")
    e = add_command(cmds, "lid-eval", "accuracy of Winnow's LID vs datatrove's LanguageFilter on Tatoeba", run_lid_eval)
    e.add_argument("--tsv", default=None)
    e.add_argument("--per-language", action="store_true")


def run_train(args: argparse.Namespace) -> int:
    from classifiers.train import TrainSettings, train_all

    s = TrainSettings(
        models_dir=args.models_dir,
        reference=args.reference,
        shared=args.shared,
        roberta_init=args.roberta_init,
        roberta_labels=args.roberta_labels,
    )
    if args.only:
        s.only = args.only
    try:
        reports = train_all(s, force=args.force)
    except (FileNotFoundError, ValueError) as exc:
        print(f"winnow models: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(reports, indent=2) if args.json else format_reports(reports))
    print(f"models: {s.models_dir}")
    return 0


def run_lid_eval(args: argparse.Namespace) -> int:
    from classifiers.lid_eval import evaluate, format_eval

    try:
        print(format_eval(evaluate(args.tsv), per_language=args.per_language))
    except (FileNotFoundError, ValueError) as exc:
        print(f"winnow models: {exc}", file=sys.stderr)
        return 2
    return 0
