"""How quality builds up frame by frame on a camera that never moves.

A recurrent model averages the past in where it matches, so on a still scene every frame
should come out cleaner than the one before. Each Kodak24 image (``val/images``, never
trained on) is held for ``--frames`` frames with fresh noise every frame (8-bit AWGN, or the
realistic camera noise: Poisson–Gaussian + chroma, then H.264 CRF 23 over the clip), run
through each model (torch) and scored per frame index; ``ideal`` is ``spatial`` applied to the
running mean of the noisy frames so far (what a perfect still-scene averager would hand the
per-frame model; it knows the scene is still). Writes JSON, markdown and a PNG.

    python benchmarks/still_progress.py --noise awgn --level 25
    python benchmarks/still_progress.py --noise realistic --level 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from streamdenoise.backends import create_backend
from streamdenoise.lab.data import image_files, read_rgb
from streamdenoise.lab.speed import cpu_description, machine_record, write_report
from streamdenoise.models.noise import realistic_eval_noise

ROOT = Path(__file__).resolve().parents[1]
IDEAL = "ideal"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def noisy_clip(clean: np.ndarray, noise: str, level: float, frames: int, seed: int):
    if noise == "realistic":
        return list(realistic_eval_noise(np.stack([clean] * frames), level, seed))
    rng = np.random.default_rng(seed)
    return [
        np.clip(np.round(clean + rng.normal(0, level, clean.shape)), 0, 255).astype(np.uint8)
        for _ in range(frames)
    ]


def per_frame(model: str, clean: np.ndarray, clip: list[np.ndarray]) -> list[float]:
    if model == IDEAL:
        total, scores = np.zeros(clean.shape), []
        for k, frame in enumerate(clip):
            total += frame
            mean = np.clip(np.round(total / (k + 1)), 0, 255).astype(np.uint8)
            denoiser = create_backend("torch", model="spatial", device="cpu")
            scores.append(psnr(denoiser.process(mean), clean))
            denoiser.close()
        return scores
    denoiser = create_backend("torch", model=model, device="cpu")
    scores = [psnr(denoiser.process(frame), clean) for frame in clip]
    denoiser.close()
    return scores


def to_markdown(doc: dict) -> str:
    marks = [k for k in (1, 2, 4, 7, 10, 15, 20, 30) if k <= doc["frames"]]
    lines = [
        f"# A still camera, frame by frame: {doc['noise']} noise, level {doc['level']:g}",
        "",
        f"Machine: {cpu_description(doc['machine'])}. {doc['images']} Kodak24 images held "
        f"{doc['frames']} frames each, fresh noise every frame; mean PSNR (dB) at each frame "
        f"index; `{IDEAL}` = `spatial` on the running mean of the noisy frames.",
        "",
        "| model | " + " | ".join(f"frame {k}" for k in marks) + " |",
        "|---|" + "---:|" * len(marks),
    ]
    for model, scores in doc["per_frame"].items():
        lines.append(f"| {model} | " + " | ".join(f"{scores[k - 1]:.2f}" for k in marks) + " |")
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for model, scores in doc["per_frame"].items():
        style = "--" if model == IDEAL else "-"
        ax.plot(range(1, len(scores) + 1), scores, style, label=model)
    ax.set_xlabel("frame of the still scene")
    ax.set_ylabel("PSNR dB")
    ax.set_title(f"Still camera, {doc['noise']} noise level {doc['level']:g}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--models", default=f"fixed,temporal,spatial,{IDEAL}")
    parser.add_argument("--noise", choices=("awgn", "realistic"), default="awgn")
    parser.add_argument("--level", type=float, default=25.0)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="stem of the result files")
    args = parser.parse_args()
    torch.set_num_threads(2)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    files = image_files(args.data / "val/images/Kodak24")[: args.images]
    totals = {m: np.zeros(args.frames) for m in models}
    for index, path in enumerate(files):
        clean = read_rgb(path)
        clip = noisy_clip(clean, args.noise, args.level, args.frames, index)
        for model in models:
            totals[model] += per_frame(model, clean.astype(np.float64), clip)
    doc = {
        "noise": args.noise,
        "level": args.level,
        "frames": args.frames,
        "images": len(files),
        "per_frame": {m: [round(v / len(files), 3) for v in t] for m, t in totals.items()},
        "machine": machine_record(),
    }
    name = f"still_progress_{args.noise}{args.level:g}"
    stem = args.out or ROOT / "benchmarks/results/quality" / name
    write_report(stem, doc, to_markdown(doc))
    plot(doc, stem.with_suffix(".png"))


if __name__ == "__main__":
    main()
