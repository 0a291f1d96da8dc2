"""Grid search of the classical baselines' settings per noise level, on training data.

Writes ``streamdenoise/backends/classical_presets.json`` (schema in
:mod:`streamdenoise.backends.classical`; backends not tuned in this run keep their entry),
which the classical backends read, so the comparison with the trained models uses each
filter at its best on data it was not scored on.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from streamdenoise.lab.image_metrics import psnr
from streamdenoise.lab.quality import Sequence, load_sequences, make_noisy, run_backend

TUNE_SEQUENCES = ("davis-bus", "sam2-bedroom")


def grid(backend: str, sigma: float) -> list[dict]:
    """Candidate settings around the σ-proportional values each filter's docs suggest."""
    if backend == "hqdn3d":
        return [
            {
                "luma_spatial": a * sigma,
                "chroma_spatial": a * sigma,
                "luma_tmp": b * a * sigma,
                "chroma_tmp": b * a * sigma,
            }
            for a in (0.5, 1.0, 1.5, 2.2)
            for b in (1.0, 2.0)
        ]
    if backend == "nlmeans":
        return [
            {"s": float(min(30.0, max(1.0, a * sigma))), "p": 7, "r": 9}
            for a in (0.4, 0.6, 0.8, 1.0)
        ]
    if backend == "atadenoise":
        # Threshold A bounds one frame's difference, B the running sum of differences along
        # the walk from the centre; the difference of two noisy pixels has std σ·√2, so both
        # scale with σ (small thresholds reject moving content, large ones smear it).
        return [
            {"0a": a, "0b": b, "1a": a, "1b": b, "2a": a, "2b": b, "s": s}
            for a in (round(min(0.3, sigma / 255 * k), 4) for k in (1.5, 2.5, 4.0, 6.0))
            for b in (round(min(5.0, sigma / 255 * k), 4) for k in (2.0, 4.0, 8.0, 16.0))
            for s in (5, 9, 17)
        ]
    if backend == "bm3d":
        # FFmpeg's sigma is about 4× the noise σ at its best; grouping was slower and worse.
        return [
            {"sigma": round(k * sigma, 2), "group": 1, "bstep": bstep}
            for k in (3.0, 4.0, 5.0)
            for bstep in (2, 4)
        ]
    if backend == "vbm3d":
        # bm3dcpu does not normalise its transform coefficients: its sigma is about 2× the
        # noise σ at its best. A reference block every 3 px as BM3D's authors set it (Dabov
        # et al., 2007), not the plugin's default 8 (which does not overlap 8×8 blocks and
        # costs it about 1.3 dB at σ = 25); searched over 16×16 (24×24 added nothing).
        return [
            {"sigma": round(k * sigma, 2), "radius": r, "block_step": 3, "bm_range": 16, "final": 1}
            for k in (1.2, 1.6, 2.0, 2.4)
            for r in (1, 2)
        ]
    if backend == "opencv-nlm":
        return [
            {"h": a * sigma, "hColor": a * sigma, "templateWindowSize": 7, "searchWindowSize": 21}
            for a in (0.4, 0.6, 0.8, 1.0)
        ]
    raise ValueError(backend)


def candidates(backend: str) -> list[dict]:
    """Every distinct setting of ``backend``'s grid over the tabulated noise levels."""
    from streamdenoise.backends.classical import load_presets

    levels = sorted(float(s) for s in load_presets()[backend])
    unique = {json.dumps(p, sort_keys=True): p for s in levels for p in grid(backend, s)}
    return list(unique.values())


@contextlib.contextmanager
def forced_params(backend: str, params: dict) -> Iterator[None]:
    """Make the classical module's preset lookup return exactly ``params``."""
    from streamdenoise.backends import classical

    original = classical.load_presets
    classical.load_presets = lambda *a, **k: {**original(), backend: {"0": params}}
    try:
        yield
    finally:
        classical.load_presets = original


def tune_classical(
    train_videos: Path,
    sigmas: list[float],
    backends: list[str],
    out: Path,
    frames: int = 10,
    crop: int = 256,
    log: Callable[[str], None] = lambda _: None,
) -> dict:
    from streamdenoise.backends import unavailable_reason

    seqs = tuning_sequences(train_videos, frames, crop)
    table: dict[str, dict[str, dict]] = {}
    for name in backends:
        if reason := unavailable_reason(name):
            log(f"{name}: skipped ({reason})")
            continue
        table[name] = {}
        for sigma in sigmas:
            best_score, best = best_on_training(name, sigma, grid(name, sigma), seqs)
            table[name][f"{sigma:g}"] = {
                k: round(v, 4) if isinstance(v, float) else v for k, v in best.items()
            }
            log(f"{name} σ={sigma:g}: best {best} → {best_score:.2f} dB")
    earlier = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**earlier, **table}, indent=2) + "\n")
    return table


def tuning_sequences(train_videos: Path, frames: int = 10, crop: int = 256) -> list[Sequence]:
    """The tuning clips: centre crops of the first frames of two training sequences."""
    seqs = [
        s for s in load_sequences(train_videos, frames) if s.name in TUNE_SEQUENCES
    ] or load_sequences(train_videos, frames)[:2]
    return [Sequence(s.name, [_centre(f, crop) for f in s.frames]) for s in seqs]


def best_on_training(
    name: str, sigma: float, candidates: list[dict], seqs: list[Sequence]
) -> tuple[float, dict]:
    """(mean PSNR, settings) of the candidate that scores best on the tuning clips."""
    from streamdenoise.backends import create_backend

    noisy = [make_noisy(s, i, sigma, "awgn", 1000)[0] for i, s in enumerate(seqs)]
    scored = []
    for params in candidates:
        with forced_params(name, params):
            backend = create_backend(name, sigma=sigma)
            try:
                per_clip = []
                for seq, frames in zip(seqs, noisy, strict=True):
                    outs = run_backend(backend, seq.frames, frames)[0]
                    pairs = zip(outs, seq.frames, strict=True)
                    per_clip.append(np.mean([psnr(o, c) for o, c in pairs]))
            finally:
                backend.close()
        scored.append((float(np.mean(per_clip)), params))
    return max(scored, key=lambda t: t[0])


def _centre(frame: np.ndarray, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return np.ascontiguousarray(frame[y : y + size, x : x + size])
