"""Monochrome frames (an IR camera's night mode): the noise level the networks should be given.

An IR camera at night sends neutral chroma, which decodes to R = G = B, and its noise is the
same in all three channels. The networks learned on noise independent per channel, so given
the per-channel level of such noise they denoise too little. This measures, per tier, the
PSNR on grey frames with luma-only noise as a function of the factor the noise estimate is
multiplied by (``--model X`` run with ``strength = factor``, the product's own monochrome
gain switched off):

1. **Tuning** on training videos (``train/videos``, ``--tune-sequences``) made grey: the
   factor with the best mean PSNR over the tiers and noise levels, among those that cost no
   tier more than :data:`MAX_LOSS_DB` at any level, is what ships as
   ``streamdenoise.models.noise.MONOCHROME_NOISE_GAIN``.
2. **Validation** on ``val/videos`` and ``val/videos-motion`` (never tuned on): each tier
   at every factor, applied by the product's own detection; and
   how many *colour* validation frames the detection takes for monochrome (it must be none).

Noise: 8-bit AWGN added to the grey value (the same in every channel) at σ = 10 / 25 / 40;
an IR camera's noise at level 25 (the suite's Poisson–Gaussian model on the grey channel,
then H.264); and the suite's colour camera noise (with its blotchy chroma noise) at level 25,
the picture made grey after the fact. OpenVINO fp32, first ``--frames`` frames of each
sequence.

    python benchmarks/monochrome_noise.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from streamdenoise.backends import create_backend
from streamdenoise.lab.data import image_files, read_rgb
from streamdenoise.lab.image_metrics import psnr
from streamdenoise.lab.quality import Sequence, load_sequences
from streamdenoise.lab.speed import cpu_description, machine_record, write_report
from streamdenoise.models import noise
from streamdenoise.models.noise import camera_noise, h264_roundtrip, realistic_eval_noise

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("tiny", "fast", "spatial", "temporal")
LEVELS = (
    ("awgn", 10.0),
    ("awgn", 25.0),
    ("awgn", 40.0),
    ("ir-camera", 25.0),
    ("colour-camera", 25.0),
)
GAINS = (1.0, 1.25, 1.5, 1.75, 2.0)
#: The factor chosen is the best on average among those that cost no tier more than this at
#: any level of the training videos: the gain must not hurt the noise it does not suit.
MAX_LOSS_DB = 0.25
TUNE_SEQUENCES = "davis-bus,davis-camel,davis-car-shadow,davis-dog,davis-goat,sam2-bedroom"
LUMA = np.array(noise.BT601_LUMA, np.float32)


def grey(frame: np.ndarray) -> np.ndarray:
    y = np.clip(frame.astype(np.float32) @ LUMA + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(y[..., None], 3, axis=2)


def ir_camera_noise(clean: list[np.ndarray], sigma: float, seed: int) -> list[np.ndarray]:
    """An IR camera's night picture: the suite's Poisson–Gaussian noise (70 % of the variance
    from shot noise at mid-grey, total ≈ ``sigma`` there after gamma) on the one grey channel,
    no chroma noise, then H.264 at CRF 23 (neutral chroma decodes to equal channels)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.stack(clean)[..., :1]).permute(0, 3, 1, 2)[None].float() / 255
    lin_std = sigma / 255 / 1.08  # the sRGB slope at mid-grey, as realistic_eval_noise
    shot = torch.tensor(0.7 * lin_std**2 / 0.214).view(1, 1, 1, 1, 1)
    read = torch.tensor(0.3**0.5 * lin_std).view(1, 1, 1, 1, 1)
    noisy = camera_noise(x, gen, shot, read, torch.zeros(1, 1, 1, 1))[0]
    u8 = (noisy.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return list(h264_roundtrip(np.ascontiguousarray(u8), 23))


def grey_noisy(seq: Sequence, index: int, kind: str, sigma: float) -> list[np.ndarray]:
    clean = [grey(f) for f in seq.frames]
    if kind == "ir-camera":
        return ir_camera_noise(clean, sigma, 7919 * index)
    if kind == "colour-camera":  # a colour camera's noise, the picture then made grey
        return [grey(f) for f in realistic_eval_noise(np.stack(clean), sigma, 7919 * index)]
    rng = np.random.default_rng([index, round(sigma * 100)])
    return [
        np.clip(f + rng.normal(0, sigma, f.shape[:2])[..., None] + 0.5, 0, 255).astype(np.uint8)
        for f in clean
    ]


def mean_psnr(model: str, strength: float, data: list[tuple[list, list]]) -> float:
    scores = []
    for clean, noisy in data:
        denoiser = create_backend("openvino", model=model, precision="fp32", strength=strength)
        scores += [psnr(denoiser.process(n), c) for c, n in zip(clean, noisy, strict=True)]
        denoiser.close()
    return round(float(np.mean(scores)), 3)


def grey_sets(sequences: list[Sequence]) -> dict[str, list[tuple[list, list]]]:
    """Per noise level: (grey clean frames, grey noisy frames) of every sequence."""
    return {
        f"{kind} {sigma:g}": [
            ([grey(f) for f in seq.frames], grey_noisy(seq, i, kind, sigma))
            for i, seq in enumerate(sequences)
        ]
        for kind, sigma in LEVELS
    }


def tune(sequences: list[Sequence], models: list[str], gains: list[float]) -> dict:
    sets = grey_sets(sequences)
    noise.MONOCHROME_NOISE_GAIN = 1.0  # strength alone sets the factor
    rows = [
        {"model": model, "gain": gain, "level": level, "psnr": mean_psnr(model, gain, data)}
        for model in models
        for gain in gains
        for level, data in sets.items()
    ]
    by_gain = {g: float(np.mean([r["psnr"] for r in rows if r["gain"] == g])) for g in gains}
    plain = {(r["model"], r["level"]): r["psnr"] for r in rows if r["gain"] == 1.0}
    worst = {
        g: min(r["psnr"] - plain[r["model"], r["level"]] for r in rows if r["gain"] == g)
        for g in gains
    }
    safe = [g for g in gains if worst[g] >= -MAX_LOSS_DB]
    return {
        "rows": rows,
        "mean_by_gain": by_gain,
        "worst_by_gain": worst,
        "best": max(safe, key=by_gain.get),
    }


def validate(
    sequences: list[Sequence], shipped: float, models: list[str], gains: list[float]
) -> list[dict]:
    sets = grey_sets(sequences)
    rows = []
    for gain in gains:
        noise.MONOCHROME_NOISE_GAIN = gain  # the product's detection applies it
        rows += [
            {"model": model, "gain": gain, "level": level, "psnr": mean_psnr(model, 1.0, data)}
            for model in models
            for level, data in sets.items()
        ]
    noise.MONOCHROME_NOISE_GAIN = shipped
    return rows


def colour_false_alarms(sequences: list[Sequence]) -> dict:
    """Colour frames taken for monochrome: clean, and with light noise (σ = 2)."""
    rng = np.random.default_rng(0)
    frames = [f for seq in sequences for f in seq.frames]
    light = [np.clip(f + rng.normal(0, 2, f.shape) + 0.5, 0, 255).astype(np.uint8) for f in frames]
    mono = [noise.monochrome_gain(f) != 1.0 for f in frames + light]
    return {"frames": len(mono), "taken_for_monochrome": int(sum(mono))}


def to_markdown(doc: dict) -> str:
    levels = [f"{k} {s:g}" for k, s in LEVELS]
    models, gains, tuned = doc["models"], doc["gains"], doc["tuning"]
    source = (
        f"Tuned on training videos ({', '.join(doc['tune_sequences'])}); the shipped gain is "
        f"{doc['shipped']:g}."
        if tuned
        else f"Validation only, at the shipped gain {doc['shipped']:g} (no tuning)."
    )
    lines = [
        "# Monochrome frames: the noise level the networks are given",
        "",
        f"Machine: {cpu_description(doc['machine'])}. OpenVINO fp32, first {doc['frames']} "
        "frames per sequence; grey frames (BT.601 luma in R, G and B) with 8-bit noise the "
        "same in every channel: AWGN σ; `ir-camera`: the suite's Poisson–Gaussian noise on "
        "the grey channel, then H.264 (CRF 23); `colour-camera`: the suite's colour camera "
        "noise (with blotchy chroma noise, H.264), the picture made grey after. " + source,
        "",
    ]
    if tuned:
        lines += [
            "## Tuning (training videos), PSNR dB by factor",
            "",
            "| tier | factor | " + " | ".join(levels) + " |",
            "|---|---:|" + "---:|" * len(levels),
        ]
        for model in models:
            for gain in gains:
                cells = {r["level"]: r["psnr"] for r in tuned["rows"]
                         if r["model"] == model and r["gain"] == gain}  # fmt: skip
                lines.append(
                    f"| {model} | {gain:g} | "
                    + " | ".join(f"{cells[v]:.2f}" for v in levels)
                    + " |"
                )
        means = ", ".join(f"{g:g}: {m:.2f}" for g, m in tuned["mean_by_gain"].items())
        worst = ", ".join(f"{g:g}: {m:+.2f}" for g, m in tuned["worst_by_gain"].items())
        lines += [
            "",
            f"Mean over tiers and levels: {means} dB. Worst change against 1 at any tier and "
            f"level: {worst} dB. Chosen: the best mean among the factors whose worst change "
            f"is at least −{MAX_LOSS_DB:g} dB: **{tuned['best']:g}**.",
            "",
        ]
    for folder, rows in doc["validation"].items():
        lines += [
            f"## Validation: {folder} (not tuned on), PSNR dB by factor",
            "",
            "| tier | level | " + " | ".join(f"{g:g}" for g in gains) + " |",
            "|---|---|" + "---:|" * len(gains),
        ]
        for model in models:
            for level in levels:
                cells = {r["gain"]: r["psnr"] for r in rows
                         if r["model"] == model and r["level"] == level}  # fmt: skip
                text = [
                    f"**{cells[g]:.2f}**" if g == doc["shipped"] else f"{cells[g]:.2f}"
                    for g in gains
                ]
                lines.append(f"| {model} | {level} | " + " | ".join(text) + " |")
        lines.append("")
    alarms = doc["colour_false_alarms"]
    lines.append(
        f"Colour validation frames taken for monochrome: {alarms['taken_for_monochrome']} of "
        f"{alarms['frames']} (clean, and with AWGN σ = 2)."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--frames", type=int, default=6, help="per sequence")
    parser.add_argument("--tune-sequences", default=TUNE_SEQUENCES)
    parser.add_argument(
        "--models", default=",".join(MODELS), help="tier names or weights files (.pt)"
    )
    parser.add_argument("--gains", default=",".join(f"{g:g}" for g in GAINS))
    parser.add_argument(
        "--no-tuning",
        action="store_true",
        help="validation only (e.g. a fine-tune against the shipped weights)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/quality/monochrome_noise"
    )
    args = parser.parse_args()
    shipped = noise.MONOCHROME_NOISE_GAIN
    models = args.models.split(",")
    gains = [float(g) for g in args.gains.split(",")]
    names = args.tune_sequences.split(",")
    tuning = [
        Sequence(name, [read_rgb(f) for f in image_files(folder)[: args.frames]])
        for name in names
        for folder in [args.data / "train/videos" / name]
    ]
    doc = {
        "shipped": shipped,
        "frames": args.frames,
        "tune_sequences": names,
        "models": models,
        "gains": gains,
        "tuning": None if args.no_tuning else tune(tuning, models, gains),
        "validation": {},
        "machine": machine_record(),
    }
    colour = []
    for folder in ("val/videos", "val/videos-motion"):
        sequences = load_sequences(args.data / folder, args.frames)
        colour += sequences
        doc["validation"][folder] = validate(sequences, shipped, models, gains)
    doc["colour_false_alarms"] = colour_false_alarms(colour)
    write_report(args.out, doc, to_markdown(doc))


if __name__ == "__main__":
    main()
