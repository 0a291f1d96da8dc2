"""The built wheel works on its own: installed into a fresh venv away from the checkout, it
runs ``streamdenoise run demo --max-frames 30`` with the ONNX exports it ships.

The fresh venv has no access to this environment's site-packages. Downloading torch and
friends again on every test run would take minutes, so it gets exactly the *declared*
dependencies instead: the transitive closure of the wheel's ``Requires-Dist``, resolved
against the distributions installed here and linked in file by file from their RECORDs.
An import the wheel does not declare is therefore missing there, as it would be for a user;
``pip check`` then confirms every requirement is met by what the venv holds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
#: No PYTHONPATH or venv of the caller leaks into the fresh one.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}


def source_copy(target: Path) -> Path:
    """The checkout's files as git sees them (tracked, or new and not ignored), so that no
    stale ``build/`` folder or local file ends up in the wheel."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


def build_wheel(source: Path, out: Path) -> Path:
    """The wheel pip builds (this environment's setuptools, no download)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(source)],
        check=True, capture_output=True, timeout=600, env=CLEAN_ENV,
    )  # fmt: skip
    (wheel,) = out.glob("streamdenoise-*.whl")
    return wheel


def wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        headers = Parser().parsestr(archive.read(name).decode())
    return [Requirement(r) for r in headers.get_all("Requires-Dist") or []]


def dependency_closure(requirements: list[Requirement]) -> list[metadata.Distribution]:
    """Installed distributions that satisfy ``requirements`` (no extras) and their own."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(requirements)
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({**default_environment(), "extra": ""}):
            continue
        key = canonicalize_name(req.name)
        if key in found:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.skip(f"this environment lacks {req.name}, which the wheel requires")
        assert req.specifier.contains(dist.version, prereleases=True), (req, dist.version)
        found[key] = dist
        todo += [Requirement(r) for r in dist.requires or []]
    return list(found.values())


def link_into(dist: metadata.Distribution, site: Path) -> None:
    """The distribution's installed files (RECORD), symlinked into ``site``."""
    root = Path(dist.locate_file(""))
    for entry in dist.files or []:
        if entry.parts[0] == "..":  # console scripts and data outside site-packages
            continue
        target = site / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(root / entry)


@pytest.mark.slow
def test_built_wheel_runs_the_demo_in_a_fresh_venv(tmp_path):
    wheel = build_wheel(source_copy(tmp_path / "src"), tmp_path / "dist")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
            env=CLEAN_ENV,
        ).strip()
    )
    assert site != Path(sysconfig.get_paths()["purelib"])
    for dist in dependency_closure(wheel_requirements(wheel)):
        link_into(dist, site)
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    install = [*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, env=CLEAN_ENV)
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, env=CLEAN_ENV)
    assert check.returncode == 0, check.stdout + check.stderr

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = CLEAN_ENV | {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    run = subprocess.run(
        [env_dir / "bin" / "streamdenoise", "run", "demo", "--max-frames", "30",
         "--size", "320x180", "--stats-json", "stats.json", "-q"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    stats = json.loads((work / "stats.json").read_text())
    assert stats["frames_out"] == 30
    backend = stats["backend"]
    assert backend["model"] == "wide-temporal"  # the strongest tier: a file is kept whole
    if "onnx" in backend:  # an export runtime ran the export shipped in the wheel
        assert Path(backend["onnx"]).is_relative_to(site)
        assert not (tmp_path / "cache" / "streamdenoise" / "onnx").exists()
    assert (work / "demo_denoised.mp4").stat().st_size > 0
    where = subprocess.check_output(
        [python, "-c", "import streamdenoise; print(streamdenoise.__file__)"],
        cwd=work,
        env=env,
        text=True,
    )
    assert Path(where.strip()).is_relative_to(site)
