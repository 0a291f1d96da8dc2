"""Product code and lab code stay apart: nothing the product runs imports the lab."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "streamdenoise"
#: The commands that drive the lab (training, fine-tuning, measuring, int8 calibration).
LAB_COMMANDS = {"bench.py", "eval.py", "train.py", "export.py", "finetune.py"}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_product_modules_never_import_the_lab():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "lab" or (
            relative.parts[0] == "commands" and relative.name in LAB_COMMANDS
        ):
            continue
        lab = [m for m in imported_modules(path) if m.startswith("streamdenoise.lab")]
        offenders += [f"{relative}: {m}" for m in lab]
    assert offenders == []


def test_no_library_module_is_named_after_a_command():
    """``commands/bench.py`` is the bench command; no other module may be called ``bench``."""
    commands = {p.stem for p in (PACKAGE / "commands").glob("*.py")} - {"__init__"}
    clashes = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "commands" and path.stem in commands
    ]
    assert clashes == []
    assert [p.name for p in PACKAGE.rglob("metrics.py")] == ["metrics.py"]
