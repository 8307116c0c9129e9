"""``winnow mixture --stage core`` (``make mixture STAGE=core`` / ``MIXTURE=<yaml>``): build one stage's shards."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mixtures.spec import EmptyStage, MixtureError, load_mixture
from pipelines.core import storage
from pipelines.core.commands import add_command
from pipelines.core.folder import Folder


def format_manifest(m: dict[str, Any]) -> str:
    lines = [
        f"stage {m['stage']}: {m['realised_tokens']:,} tokens in {m['documents']:,} documents, "
        f"{len(m['shards'])} shard(s); budget {m['total_tokens_budget']:,} (requested "
        f"{m['total_tokens_requested']}, largest at target shares {m['max_budget_at_target_shares']:,}); "
        f"seed {m['seed']}",
        f"  {'source':<16}{'status':<9}{'target':>8}{'realised':>10}{'avail tok':>14}{'tokens':>14}"
        f"{'epochs':>8}{'docs':>8}{'contam':>8}",
    ]
    for s in m["sources"]:
        lines.append(
            f"  {s['name']:<16}{s['status']:<9}{s['effective_target_share']:>8.2%}"
            f"{s['realised_share']:>10.2%}{s['available_tokens']:>14,}{s['realised_tokens']:>14,}"
            f"{s['epochs']:>8.2f}{s['documents']:>8,}{s['contaminated_documents']:>8,}"
        )
        if s["note"]:
            lines.append(f"    {s['note']}")
    d = m["decontamination"]
    if not d.get("enabled"):
        lines.append(f"  WARNING: {d.get('warning', 'decontamination is off')}")
    else:
        lines.append(
            f"  decontamination ({d['n']}-grams, {d['ngrams']:,} from {sum(d['benchmark_items'].values()):,} "
            f"items): removed {d['removed']} document(s) {d['removed_by_benchmark'] or ''}"
        )
    return "\n".join(lines)


def build(
    output: str,
    stage: str | None = None,
    mixture: str | None = None,
    executor: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Build one stage (``mixture`` YAML or the shipped ``stage``) and return its manifest; ``executor`` and
    ``workers`` override the mixture's own settings.

    Raises :class:`MixtureError` (what to change), :class:`EmptyStage` (nothing selected) or FileNotFoundError."""
    from mixtures.build import build_stage

    spec = load_mixture(stage, mixture)
    if not Folder(output).isdir():
        raise MixtureError(f"OUTPUT {output} does not exist: run `make pipeline SOURCE=...` first")
    return build_stage(spec, output, executor=executor, workers=workers)


def empty_is_error(stage: str | None, mixture: str | None, strict: bool) -> bool:
    return strict or load_mixture(stage, mixture).on_empty == "error"


def add_parser(sub: Any) -> None:
    p = add_command(sub, "mixture", "build a training stage's mixture shards", run_mixture)
    p.add_argument("--stage", default=None, help="core | anneal | long_context (mixtures/<stage>.yaml)")
    p.add_argument("--mixture", default=None, help="a mixture YAML of your own (overrides --stage)")
    p.add_argument("--output", default="output", help="the curated output tree (OUTPUT/<source>/docs)")
    p.add_argument(
        "--executor",
        default=None,
        choices=("auto", "local", "process", "ray"),
        help="where the tasks run (default: the mixture's executor:, else auto: Ray when RAY_ADDRESS is set, "
        "else a process pool)",
    )
    p.add_argument("--workers", type=int, default=None, help="process pool size (default: every core)")
    p.add_argument(
        "--strict", action="store_true", help="a stage that selects nothing is an error (exit 2), not 'empty'"
    )


def run_mixture(args: argparse.Namespace) -> int:
    if not args.stage and not args.mixture:
        print("winnow mixture: give --stage (STAGE=) or --mixture (MIXTURE=)", file=sys.stderr)
        return 2
    try:
        manifest = build(args.output, args.stage, args.mixture, args.executor, args.workers)
    except EmptyStage as exc:
        if empty_is_error(args.stage, args.mixture, args.strict):
            print(f"winnow mixture: {exc}", file=sys.stderr)
            return 2
        print(f"{exc}\n  nothing written (pass --strict or set on_empty: error to make this a failure)")
        return 0
    except (MixtureError, FileNotFoundError) as exc:
        print(f"winnow mixture: {exc}", file=sys.stderr)
        return 2
    print(format_manifest(manifest))
    stage = storage.join(storage.absolute(args.output), "mixtures", manifest["stage"])
    print(f"  output: {stage}")
    print(
        f"  shards: {storage.dirname(storage.join(stage, manifest['shards'][0]['file'])) if manifest['shards'] else '-'}"
    )
    return 0
