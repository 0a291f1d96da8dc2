"""The visual comparison PNG and the side-by-side MP4, from the validation clip vid4-walk.

Every contender denoises the same noisy frames causally (frame by frame, state carried), as
in the quality section; the picture shows the same crop of the last frame for each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from suite import quality
from suite.contenders import Contender
from suite.visual import comparison_grid, crop_box, side_by_side_video

CLIP = Path("val/videos/vid4-walk")
VIDEO_FPS = 12  # vid4 is 47 frames: play it slowly enough to see


def _one_per_quality_id(contenders: list[Contender]) -> list[Contender]:
    """The first contender of each model/baseline (models on the default backend)."""
    chosen: dict[str, Contender] = {}
    for c in contenders:
        chosen.setdefault(c.quality_id, c)
    baselines = [c for c in chosen.values() if c.kind == "baseline"]
    return baselines + [c for c in chosen.values() if c.kind == "model"]


def render(
    contenders: list[Contender],
    data: Path,
    quality_section: dict,
    plan: quality.QualityPlan,
    out: Path,
    log: Callable[[str], None],
) -> dict:
    clean = quality.load_clip(data / CLIP, plan)
    picked = _one_per_quality_id(contenders)
    rows, outputs_25 = [], {}
    for title, noise, sigma in (
        ("σ=25", "awgn", 25.0),
        ("realistic", "realistic", quality.REALISTIC_LEVEL),
    ):
        noisy = quality.noisy_clip(clean, noise, sigma)
        tiles = [(f"{title} noisy\n{quality.psnr(noisy[-1], clean[-1]):.2f} dB", noisy[-1])]
        for c in picked:
            log(f"visual {title} {c.label}")
            frames = quality.denoise_clip(c, noisy, noise, sigma)
            if noise == "awgn":
                outputs_25[c.quality_id] = frames
            tiles.append(
                (f"{c.quality_id}\n{quality.psnr(frames[-1], clean[-1]):.2f} dB", frames[-1])
            )
        tiles.append(("clean", clean[-1]))
        rows.append(tiles)
        if noise == "awgn":
            noisy_25 = noisy
    box = crop_box(*clean[-1].shape[:2], size=plan.crop)
    rows = [[(name, np.ascontiguousarray(img[box])) for name, img in tiles] for tiles in rows]
    grid = comparison_grid(rows, out / "visual_comparison.png")
    panels = [("noisy σ=25", noisy_25)]
    best = best_baseline(quality_section["results"])
    if best in outputs_25:
        panels.append((best, outputs_25[best]))
    default = next((c.quality_id for c in picked if c.kind == "model"), None)
    if default:
        panels.append((default, outputs_25[default]))
    panels.append(("clean", clean))
    video = side_by_side_video(panels, out / "side_by_side.mp4", VIDEO_FPS)
    return {"images": [grid.name], "video": video.name}


def best_baseline(results: list[dict]) -> str | None:
    rows = [
        r for r in results if r["kind"] == "baseline" and r["noise"] == "awgn" and r["sigma"] == 25
    ]
    return max(rows, key=lambda r: r["psnr"])["id"] if rows else None
