"""Section 3: PSNR/SSIM on the validation clips at AWGN σ = 10…50 and realistic noise.

PROVISIONAL: until the evaluation runner lands, the noise and metrics below stand in for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from streamdenoise.models.noise import add_realistic, quantize, realistic_level, synthesize
from suite.contenders import Contender

CLIPS = ("val/videos/vid4-walk", "val/videos/vid4-city")
REALISTIC_LEVEL = 25.0
SEED = 1234


@dataclass
class QualityPlan:
    sigmas: list[float]
    realistic: bool
    frames: int  # per clip
    width: int | None  # resize clips to this width (quick), None = native
    crop: int = 192  # visual comparison crop


def load_clip(folder: Path, plan: QualityPlan) -> list[np.ndarray]:
    frames = []
    for path in sorted(folder.iterdir())[: plan.frames]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
        if plan.width:
            height = round(image.shape[0] * plan.width / image.shape[1] / 2) * 2
            image = cv2.resize(image, (plan.width, height), interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(image))
    return frames


def noisy_clip(clean: list[np.ndarray], noise: str, sigma: float) -> list[np.ndarray]:
    x = torch.from_numpy(np.stack(clean)).permute(0, 3, 1, 2).float()[None] / 255
    if noise == "awgn":
        y = synthesize(x, SEED, "awgn", sigma / 255)
    else:
        gen = torch.Generator().manual_seed(SEED)
        y = quantize(add_realistic(x, gen, torch.tensor([realistic_level(sigma)])))
    return list((y[0].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy())


def denoise_clip(c: Contender, noisy: list[np.ndarray], noise: str, sigma: float):
    denoiser = c.create()
    try:
        denoiser.prepare(noisy[0].shape[1], noisy[0].shape[0])
        return [denoiser.process(f) for f in noisy]
    finally:
        denoiser.close()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return float(s.mean())


def run(
    contenders: list[Contender],
    data: Path,
    plan: QualityPlan,
    workdir: Path,
    log: Callable[[str], None],
) -> dict:
    picked: dict[str, Contender] = {}
    for c in contenders:
        picked.setdefault(c.quality_id, c)
    clips = {name: load_clip(data / name, plan) for name in CLIPS}
    settings = [("awgn", float(s)) for s in plan.sigmas]
    if plan.realistic:
        settings.append(("realistic", REALISTIC_LEVEL))
    results = []
    for noise, sigma in settings:
        for c in picked.values():
            log(f"quality {noise} {sigma:g} {c.quality_id}")
            ps, ss = [], []
            for clean in clips.values():
                out = denoise_clip(c, noisy_clip(clean, noise, sigma), noise, sigma)
                ps += [psnr(o, g) for o, g in zip(out, clean)]
                ss += [ssim(o, g) for o, g in zip(out, clean)]
            results.append(
                {
                    "contender": c.quality_id,
                    "id": c.quality_id,
                    "kind": c.kind,
                    "noise": noise,
                    "sigma": sigma,
                    "psnr": round(float(np.mean(ps)), 3),
                    "ssim": round(float(np.mean(ss)), 4),
                }
            )
    return {"protocol": "provisional", "clips": list(CLIPS), "results": results}
