"""The visual comparison PNG and the side-by-side MP4, from the validation clip vid4-walk.

Frames, noise and denoising come from the evaluation runner (same seeds, same causal
processing, same σ hints as the quality section); the grid shows one crop of the last frame.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamdenoise.lab.data import image_files, read_rgb
from streamdenoise.lab.image_metrics import psnr
from streamdenoise.lab.quality import Sequence, create, make_noisy, run_backend
from suite import quality
from suite.contenders import Contender
from suite.visual import comparison_grid, crop_box, side_by_side_video

CLIP = "vid4-walk"
VIDEO_FPS = 12  # vid4 is slow-moving and short: play it slowly enough to see


def _denoise(c: Contender, seq: Sequence, noisy: list[np.ndarray], sigma: float, noise: str):
    # As the runner does: for realistic noise the classical filters get the oracle noise std.
    hint = (
        float(np.std(np.stack(noisy).astype(np.float32) - np.stack(seq.frames)))
        if noise == "realistic"
        else sigma
    )
    backend = create(quality.spec(c), hint)
    try:
        return run_backend(backend, seq.frames, noisy)[0]
    finally:
        backend.close()


def render(
    contenders: list[Contender],
    videos: Path,
    quality_results: list[dict],
    plan: quality.QualityPlan,
    out: Path,
    log: Callable[[str], None],
) -> dict:
    """Write visual_comparison.png and side_by_side.mp4 into ``out``; returns their names."""
    files = image_files(videos / CLIP)[: plan.frames]
    seq = Sequence(CLIP, [read_rgb(f) for f in files])
    clean = seq.frames[-1]
    picked = quality.quality_contenders(contenders)
    picked = [c for c in picked if c.kind == "baseline"] + [c for c in picked if c.kind == "model"]
    rows, outputs_25 = [], {}
    for title, noise, sigma in (
        ("σ=25", "awgn", 25.0),
        ("realistic", "realistic", quality.REALISTIC_LEVEL),
    ):
        noisy = make_noisy(seq, 0, sigma, noise, quality.SEED)[0]
        tiles = [(f"{title} noisy\n{psnr(noisy[-1], clean):.2f} dB", noisy[-1])]
        for c in picked:
            log(f"visual {title} {c.quality_id}")
            frames = _denoise(c, seq, noisy, sigma, noise)
            tiles.append((f"{c.quality_id}\n{psnr(frames[-1], clean):.2f} dB", frames[-1]))
            if noise == "awgn":
                outputs_25[c.quality_id] = frames
        tiles.append(("clean", clean))
        rows.append(tiles)
        if noise == "awgn":
            noisy_25 = noisy
    box = crop_box(*clean.shape[:2], size=plan.crop)
    grid = comparison_grid(
        [[(t, np.ascontiguousarray(img[box])) for t, img in tiles] for tiles in rows],
        out / "visual_comparison.png",
    )
    panels = [("noisy, AWGN σ=25", noisy_25)]
    best = best_baseline(quality_results)
    if best in outputs_25:
        panels.append((f"{best} (best classical)", outputs_25[best]))
    model = next((c.quality_id for c in picked if c.kind == "model"), None)
    if model:
        panels.append((f"{model} model", outputs_25[model]))
    panels.append(("clean", seq.frames))
    video = side_by_side_video(panels, out / "side_by_side.mp4", VIDEO_FPS)
    return {"images": [grid.name], "video": video.name}


def best_baseline(results: list[dict]) -> str | None:
    """The classical filter with the highest PSNR at AWGN σ=25."""
    rows = [
        r for r in results if r["kind"] == "baseline" and r["noise"] == "awgn" and r["sigma"] == 25
    ]
    return max(rows, key=lambda r: r["psnr"])["id"] if rows else None
