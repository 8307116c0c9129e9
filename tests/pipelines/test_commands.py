"""The command tree: every command listed with help, defaults shown, ``winnow steps``, ``winnow run --dry-run``,
and a default input that does not exist asking for ``--input``."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os

import pytest

from pipelines.cli import COMMAND_MODULES, build_parser, main
from pipelines.sources.registry import SOURCES


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_is_listed_with_a_line_of_help(capsys):
    with pytest.raises(SystemExit):
        main(["-h"])
    text = capsys.readouterr().out
    for name in ("run", "steps", "query", "dedup", "models", "mixture", "report", "benchmarks", "cron"):
        assert f"\n    {name} " in text, name
    assert "bench " not in text  # the dead `winnow bench` entry is gone (make bench runs bench/*.py)
    helps = {a.dest: a.help for a in build_parser()._subparsers._group_actions[0]._choices_actions}
    assert all(helps.values()) and len(helps) >= len(COMMAND_MODULES)


def test_each_command_shows_its_defaults_and_takes_v_after_its_name(capsys):
    with pytest.raises(SystemExit):
        main(["run", "-h"])
    text = capsys.readouterr().out
    assert "(default: output)" in " ".join(text.split()) and "--dry-run" in text
    with pytest.raises(SystemExit):
        main(["dedup", "lines", "-h"])
    assert "(default: 30000000)" in " ".join(capsys.readouterr().out.split())
    args = build_parser().parse_args(["mixture", "--stage", "core", "-v"])
    assert args.verbose and args.handler.__name__ == "run_mixture"
    assert build_parser().parse_args(["-v", "models", "train"]).verbose  # before the name it is not reset


def test_a_local_only_command_refuses_an_object_store_path(capsys):
    assert main(["dedup", "--input", "docs", "--output", "s3://bucket/out"]) == 2
    assert "local paths only, not s3://bucket/out" in capsys.readouterr().err


def test_steps_lists_every_step_of_every_source_with_the_dataclass_defaults(capsys):
    assert main(["steps", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for source in SOURCES:
        module = importlib.import_module(f"pipelines.sources.{source}")
        assert [r["step"] for r in rows if r["source"] == source] == list(module.STEPS), source
    gopher = next(r for r in rows if r["source"] == "commoncrawl" and r["step"] == "gopher")
    assert gopher["kind"] == "filter"
    settings = {s["setting"]: s for s in gopher["settings"]}
    from filters.heuristics import GopherQuality

    for f in dataclasses.fields(GopherQuality):
        if f.name != "name":
            assert f.name in settings
    assert settings["mode"]["default"] == "drop"
    lang = next(r for r in rows if r["step"] == "lang_filter")
    assert {s["setting"]: s["default"] for s in lang["settings"]} == {
        "languages": ["en"],
        "threshold": 0.5,
        "thresholds": {},
        "skip_domains": [],  # every step's: rows of these domains skip it (code/math routing)
    }
    assert main(["steps", "--source", "books"]) == 0
    text = capsys.readouterr().out
    assert "strip_gutenberg" in text and "require_markers" in text and "commoncrawl" not in text


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--source", "books", "--output", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "books: 5 input(s), 0 already done, 5 to process" in text
    assert "strip_gutenberg" in text and "corpus stages after the last input: book_dedup" in text
    assert "dry run: nothing was read or written" in text
    assert not out.exists()


def test_a_missing_default_input_asks_for_input(tmp_path, capsys):
    config = tmp_path / "books.yaml"
    config.write_text("input: tests/fixtures/no-such-books\n", encoding="utf-8")
    rc = main(["run", "--source", "books", "--config", str(config), "--output", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "give --input" in err and "tests/fixtures/no-such-books" in err
    assert not os.path.exists(tmp_path / "o")
