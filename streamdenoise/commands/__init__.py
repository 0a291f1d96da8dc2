"""One module per ``streamdenoise`` subcommand, each with ``add_arguments`` and ``run``."""

from __future__ import annotations

from pathlib import Path


def write_reports(*reports: tuple[Path | None, str]) -> None:
    """Write each (path, text) whose path was given, creating its folder."""
    for path, text in reports:
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
