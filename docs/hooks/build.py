"""MkDocs hooks: the CLI reference is generated from the argparse parsers at build time (so it
cannot go stale), and the benchmark plots are published under ``results/`` and the change
log under ``changelog.md`` without copying them into docs/."""

from __future__ import annotations

import argparse
import html
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- cli-reference -->"
#: Files outside docs/ that the site publishes: (folder or file, path in the site, pattern).
PUBLISHED = (
    (ROOT / "benchmarks" / "results", "results", "*.png"),
    (ROOT / "CHANGELOG.md", "changelog.md", ""),
)


def on_files(files: Files, config) -> Files:
    for source, target, pattern in PUBLISHED:
        paths = sorted(source.rglob(pattern)) if source.is_dir() else [source]
        for path in paths:
            uri = target if source.is_file() else f"{target}/{path.relative_to(source).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return markdown


def cli_reference() -> str:
    """Markdown for every subcommand: usage and one table row per option."""
    from streamdenoise.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    lines: list[str] = []
    for name, command in sub.choices.items():
        usage = " ".join(command.format_usage().split()).removeprefix("usage: ")
        lines += [f"### `{name}`", "", helps.get(name) or "", "", f"```\n{usage}\n```", ""]
        lines += ["| option | meaning |", "|---|---|"]
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            lines.append(f"| {_flags(action)} | {_escape(action.help or '')} |")
        lines.append("")
    return "\n".join(lines)


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    takes_value = action.nargs != 0
    metavar = f" {action.metavar or action.dest.upper()}" if takes_value else ""
    return ", ".join(f"`{flag}{metavar}`" for flag in action.option_strings)


def _escape(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")
