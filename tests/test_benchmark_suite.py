"""The benchmark suite's --quick path, end to end: it must write every promised file, and the
markdown tables must say what the JSON says. Speeds are not checked (they are measured)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO_ROOT, probe

DATASETS = REPO_ROOT.parent / "shared" / "datasets"
MAX_VIDEO_BYTES = 2 * 1024 * 1024

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        not (DATASETS / "val" / "videos").is_dir(),
        reason="needs ../shared/datasets next to the checkout",
    ),
]


@pytest.fixture(scope="module")
def suite_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("suite")
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "run_all.py"),
            "--quick",
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def results(suite_out) -> dict:
    return json.loads((suite_out / "results.json").read_text())


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """Section heading -> rows (cells) of the first table under it, header row excluded."""
    tables: dict[str, list[list[str]]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        elif line.startswith("|") and heading is not None and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            tables.setdefault(heading, []).append(cells)
    return {h: rows[1:] for h, rows in tables.items()}


def section(tables: dict, prefix: str) -> list[list[str]]:
    matches = [rows for heading, rows in tables.items() if heading.startswith(prefix)]
    assert len(matches) == 1, f"expected one table under '## {prefix}…', got {list(tables)}"
    return matches[0]


def test_json_schema(results):
    assert results["schema"] == "streamdenoise-benchmark-suite/1"
    assert results["quick"] is True
    machine = results["machine"]
    assert machine["cpu"]["model"] and machine["cpu"]["cores"] >= 1
    assert machine["git_commit"] and machine["versions"]
    for c in results["contenders"]:
        assert {"label", "backend", "kind", "available", "reason"} <= set(c)
        assert c["available"] or c["reason"]
        assert c["backend"] != "identity", "pass-through is not a model backend"
    assert results["e2e"]["results"], "no end-to-end result"
    for row in results["e2e"]["results"]:
        assert row["frames"] > 0 and row["fps"] > 0
        assert set(row["latency_ms"]) >= {"p50", "p95", "p99"}
        assert row["latency_ms"]["p50"] <= row["latency_ms"]["p95"] <= row["latency_ms"]["p99"]
        assert {"denoise", "sink_write"} <= set(row["stages_ms"])
        assert row["cpu_percent"] > 0
    sizes = {row["size"] for row in results["e2e"]["results"]}
    assert len(sizes) >= 2
    live = results["live"]
    assert live["policy"] == "latest" and live["results"]
    for row in live["results"]:
        assert row["frames_in"] > 0 and 0 <= row["drop_rate"] <= 1
        assert row["latency_samples_ms"] == sorted(row["latency_samples_ms"])
    quality = results["quality"]["results"]
    assert {r["noise"] for r in quality} == {"awgn", "realistic"}
    assert 25 in {r["sigma"] for r in quality if r["noise"] == "awgn"}
    for row in quality:
        assert 5 < row["psnr"] < 60 and 0 < row["ssim"] <= 1
    assert results["quality_vs_speed"]["results"]


def test_images_exist_and_open(suite_out, results):
    names = results["outputs"]["images"]
    for expected in (
        "quality_vs_speed.png",
        "latency_cdf.png",
        "stage_latency.png",
        "visual_comparison.png",
    ):
        assert expected in names
    for name in names:
        image = cv2.imread(str(suite_out / name))
        assert image is not None and image.shape[0] > 50 and image.shape[1] > 50, name


def test_side_by_side_video_is_small_and_playable(suite_out, results):
    path = suite_out / results["outputs"]["video"]
    assert path.stat().st_size < MAX_VIDEO_BYTES
    assert probe(path).frames >= 2


def test_markdown_tables_match_json(suite_out, results):
    tables = markdown_tables((suite_out / "summary.md").read_text())
    e2e_rows = section(tables, "End-to-end")
    assert len(e2e_rows) == len(results["e2e"]["results"])
    for cells, row in zip(e2e_rows, results["e2e"]["results"], strict=True):
        assert cells[0] == row["contender"] and cells[1] == row["size"]
        assert cells[2] == str(row["frames"]) and cells[3] == f"{row['fps']:.1f}"
        assert cells[4] == f"{row['latency_ms']['p50']:.1f}"
    live_rows = section(tables, "Live latency")
    assert [(c[0], c[1]) for c in live_rows] == [
        (r["contender"], str(r["frames_out"])) for r in results["live"]["results"]
    ]
    quality_rows = section(tables, "Quality (")
    by_cell = {(r["contender"], r["noise"], r["sigma"]): r for r in results["quality"]["results"]}
    contenders = list(dict.fromkeys(r["contender"] for r in results["quality"]["results"]))
    assert [c[0] for c in quality_rows] == contenders
    header = markdown_header(suite_out / "summary.md", "Quality (")
    for cells in quality_rows:
        for column, cell in zip(header[1:], cells[1:], strict=True):
            noise, sigma = (
                ("realistic", by_realistic_sigma(results))
                if column == "realistic"
                else ("awgn", float(column[2:]))
            )
            row = by_cell[(cells[0], noise, sigma)]
            assert cell == f"{row['psnr']:.2f} / {row['ssim']:.3f}"
    speed_rows = section(tables, "Quality vs speed")
    assert len(speed_rows) == len(results["quality_vs_speed"]["results"])
    for cells, row in zip(speed_rows, results["quality_vs_speed"]["results"], strict=True):
        assert cells[0] == row["contender"] and cells[2] == f"{row['psnr']:.2f}"


def markdown_header(path: Path, prefix: str) -> list[str]:
    heading = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif heading and heading.startswith(prefix) and line.startswith("|"):
            return [c.strip() for c in line.strip().strip("|").split("|")]
    raise AssertionError(f"no table under {prefix}")


def by_realistic_sigma(results: dict):
    sigmas = {r["sigma"] for r in results["quality"]["results"] if r["noise"] == "realistic"}
    assert len(sigmas) == 1
    return sigmas.pop()


def test_headroom_self_ensemble_orientations_are_eight_distinct_and_undo_exactly():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from cbsd68_headroom import orientations

    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    turned = [forward(image) for forward, _ in orientations()]
    assert len({t.tobytes() + bytes(t.shape) for t in turned}) == 8
    for (_, inverse), t in zip(orientations(), turned, strict=True):
        assert np.array_equal(inverse(t), image)
