"""Section 3: PSNR/SSIM/flicker on the validation clips, through the evaluation runner.

``streamdenoise.lab.quality.evaluate`` does the work (fixed-seed noise, 8-bit clipped
and quantized input, causal frame-by-frame processing, classical filters given the true σ);
this module only picks the contenders, the levels and the data, and flattens the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamdenoise.lab.quality import BackendSpec, evaluate
from suite.clips import make_tiny_sequences
from suite.contenders import Contender

VIDEOS = Path("val/videos")
CLIPS = ("vid4-walk", "vid4-city")
#: Realistic camera noise is evaluated at one level: ≈ this σ at mid-grey before H.264.
REALISTIC_LEVEL = 25.0
SEED = 0


@dataclass
class QualityPlan:
    sigmas: list[float]
    realistic: bool
    frames: int  # per clip
    width: int | None  # downscale the clips to this width (quick), None = native
    crop: int = 192  # visual comparison crop


def dataset(data: Path, plan: QualityPlan, workdir: Path) -> Path:
    """The folder of clip folders to evaluate on (tiny copies when ``plan.width`` is set)."""
    folders = [data / VIDEOS / name for name in CLIPS]
    if plan.width is None:
        return data / VIDEOS
    return make_tiny_sequences(folders, workdir / "tiny_videos", plan.width, plan.frames)


def quality_contenders(contenders: list[Contender]) -> list[Contender]:
    """One entry per model or baseline: quality does not depend on the runtime."""
    chosen: dict[str, Contender] = {}
    for c in contenders:
        chosen.setdefault(c.quality_id, c)
    return list(chosen.values())


def spec(c: Contender) -> BackendSpec:
    return BackendSpec(c.quality_id, c.backend, c.model)


def run(
    contenders: list[Contender], path: Path, plan: QualityPlan, log: Callable[[str], None]
) -> dict:
    """Evaluate every model and baseline on the clip folders under ``path``."""
    picked = quality_contenders(contenders)
    by_label = {c.quality_id: c for c in picked}
    settings = [("awgn", list(plan.sigmas))]
    if plan.realistic:
        settings.append(("realistic", [REALISTIC_LEVEL]))
    results = []
    for noise, levels in settings:
        report = evaluate(
            [path],
            levels,
            [spec(c) for c in picked],
            noise=noise,
            seed=SEED,
            max_frames=plan.frames,
            log=lambda m: log(f"quality {m}"),
        )
        for row in report["results"]:
            c = by_label[row["backend"]]
            results.append(
                {
                    "contender": c.quality_id,
                    "id": c.quality_id,
                    "kind": c.kind,
                    "backend": c.backend,
                    "noise": noise,
                    "sigma": row["sigma"],
                    "psnr": row["psnr"],
                    "ssim": row["ssim"],
                    "flicker": row["flicker"],
                    "process_fps": row["fps"],
                    "frames": row["frames"],
                    "per_sequence": row["per_sequence"],
                }
            )
    return {
        "protocol": protocol(plan),
        "data": [str(VIDEOS / name) for name in CLIPS],
        "results": results,
    }


def protocol(plan: QualityPlan) -> str:
    size = "native size" if plan.width is None else f"downscaled to {plan.width} px wide"
    return (
        f"Clips val/videos/{{{','.join(CLIPS)}}} (first {plan.frames} frames each, {size}); "
        "noise from fixed seeds, clipped and quantized to 8 bits as a camera delivers it "
        f"(seed {SEED}); realistic = Poisson–Gaussian + chroma noise, then H.264 CRF 23, at "
        f"≈σ {REALISTIC_LEVEL:g} at mid-grey. Every contender processes each clip causally, "
        "frame by frame; models run blind (own noise estimate), classical filters get the "
        "true σ and their per-σ tuned settings. PSNR/SSIM are means over frames, then clips; "
        "flicker = output minus clean frame-to-frame activity (lower is steadier)."
    )
