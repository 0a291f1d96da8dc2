"""The suite's PNG plots, drawn from the results dictionary only (so they can be redrawn)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

REALTIME_FPS = 30.0
MODEL_COLOR = "tab:blue"
BASELINE_COLOR = "tab:orange"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def quality_vs_speed(rows: list[dict], path: Path, speed_label: str) -> Path:
    """PSNR at σ=25 against fps (log x), one labelled point per contender, 30 fps line."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = [r for r in rows if r.get("fps") and r.get("psnr") is not None]
    for row in points:
        color = MODEL_COLOR if row["kind"] == "model" else BASELINE_COLOR
        ax.scatter(row["fps"], row["psnr"], s=60, color=color, zorder=3)
        ax.annotate(
            row["contender"],
            (row["fps"], row["psnr"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.axvline(REALTIME_FPS, color="grey", linestyle="--", linewidth=1)
    ax.text(REALTIME_FPS, ax.get_ylim()[0], " 30 fps", color="grey", va="bottom", fontsize=8)
    if points:
        fps = [r["fps"] for r in points]
        ax.set_xlim(min(min(fps), REALTIME_FPS) / 2, max(max(fps), REALTIME_FPS) * 2)
    ax.set_xlabel(f"end-to-end fps, {speed_label} (log scale)")
    ax.set_ylabel("PSNR at σ=25 (dB)")
    ax.set_title(
        "Quality vs speed (blue: streamdenoise models, orange: classical baselines)", fontsize=9
    )
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def latency_cdf(series: dict[str, list[float]], path: Path, title: str) -> Path:
    """Empirical CDF of end-to-end latency (ms) per contender, log x."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, samples in series.items():
        if not samples:
            continue
        values = np.sort(np.asarray(samples, dtype=float))
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency (ms, log scale)")
    ax.set_ylabel("fraction of frames ≤ latency")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def stage_bars(rows: list[dict], path: Path, title: str) -> Path:
    """Median latency of each pipeline stage, stacked per contender (linear ms)."""
    stages: list[str] = []
    for row in rows:
        stages += [s for s in row.get("stages_ms", {}) if s not in stages]
    labels = [row["contender"] for row in rows]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 2.2))
    left = np.zeros(len(rows))
    for stage in stages:
        widths = np.array(
            [row.get("stages_ms", {}).get(stage, {}).get("p50") or 0.0 for row in rows]
        )
        ax.barh(labels, widths, left=left, label=stage)
        left += widths
    ax.set_xlabel("median latency per stage (ms), stacked")
    ax.set_title(title, fontsize=9)
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    fig.legend(fontsize=8, loc="lower center", ncol=len(stages), frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
