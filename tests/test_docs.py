"""The documentation: the site builds strictly, its Python examples run verbatim, the CLI
reference is generated from the parsers, and the README stays a front door."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PAGES = ("docs/python-api.md", "docs/index.md", "README.md")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in EXAMPLE_PAGES:
        blocks = PYTHON_BLOCK.findall((REPO / page).read_text())
        found += [(f"{page}#{n}", code) for n, code in enumerate(blocks, 1)]
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), examples(), ids=[w for w, _ in examples()])
def test_python_examples_run_verbatim(where, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, where, "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.strip()  # every example shows its result


@pytest.mark.slow
def test_site_builds_strictly_with_the_generated_cli_reference(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    reference = (site / "cli" / "index.html").read_text()
    from streamdenoise import settings
    from streamdenoise.cli import COMMANDS

    for command in COMMANDS:
        assert f"<code>{command}</code>" in reference
    every = settings.RUN + settings.BENCH + settings.EVAL + settings.TRAIN + settings.EXPORT
    for name in every + settings.FINETUNE:
        setting = settings.SETTINGS[name]
        assert (setting.metavar if setting.kind == "positional" else setting.option) in reference
    assert (site / "results" / "suite" / "quality_vs_speed.png").is_file()


def test_readme_is_a_front_door():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    ci = (REPO / ".ci" / "run").read_text()
    commands = re.findall(r"^```bash\n(python3 -m venv .*)\n```", readme, re.MULTILINE)
    assert len(commands) == 2 and commands[1] in ci  # command (2) is what CI runs
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text().lower()
        for phrase in ("lent machine", "the issue", "issue #", "design.md"):
            assert phrase not in text, (page.name, phrase)
