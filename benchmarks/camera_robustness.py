"""How weights files hold up on camera noise they were not trained for, beside AWGN.

    python benchmarks/camera_robustness.py shipped=wide-temporal \\
        control=/path/to/a.pt isp=/path/to/b.pt --label xeon-amx-isp-probe

Each contender (``LABEL=MODEL``: a shipped model's name or a weights file) runs on torch,
blind, through:

- **the simulated camera** of ``finetune_camera.py`` (the clean ``vid4-walk`` frames through
  a Bayer mosaic with Poisson–Gaussian sensor noise, edge-aware demosaicking, sharpening and
  H.264 CRF 28), scored against the same camera's noise-free rendering;
- **CC15** (``val/images-real/cc15``): real camera noise, single photos, against the mean of
  500 shots;
- **`eval`'s realistic noise** (Poisson–Gaussian with chroma noise, H.264 CRF 23) at level 30,
  and **8-bit AWGN** at σ = 25, on ``val/videos`` (20 frames) and ``val/videos-motion`` (10).

None of these frames is in the training data. Writes JSON + markdown under ``--out``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import finetune_camera  # the simulated camera, shared with that benchmark
import numpy as np

from streamdenoise.lab.quality import BackendSpec, evaluate
from streamdenoise.lab.speed import cpu_description, machine_record, write_report

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT.parent / "shared/datasets/val"


def simulated_camera() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(the camera's noisy frames, their noise-free rendering): ``finetune_camera``'s clip."""
    with tempfile.TemporaryDirectory() as tmp:
        return finetune_camera.simulate("val/videos/vid4-walk", 40, Path(tmp) / "camera.mp4")


def camera_scores(model: str, noisy: list[np.ndarray], ref: list[np.ndarray]) -> dict:
    scores = finetune_camera.score(model, noisy, ref)
    return {key: scores[key] for key in ("psnr", "ssim")}


def eval_scores(spec: BackendSpec) -> dict:
    """PSNR / SSIM per test, through ``eval``'s runner."""
    tests = {
        "cc15 (real)": ([VAL / "images-real/cc15"], [25.0], "awgn", None),
        "videos, realistic 30": ([VAL / "videos"], [30.0], "realistic", 20),
        "videos-motion, realistic 30": ([VAL / "videos-motion"], [30.0], "realistic", 10),
        "videos, AWGN 25": ([VAL / "videos"], [25.0], "awgn", 20),
        "videos-motion, AWGN 25": ([VAL / "videos-motion"], [25.0], "awgn", 10),
    }
    scores = {}
    for name, (data, sigmas, noise, frames) in tests.items():
        (row,) = evaluate(data, sigmas, [spec], noise=noise, max_frames=frames)["results"]
        scores[name] = {"psnr": row["psnr"], "ssim": row["ssim"]}
    return scores


def to_markdown(doc: dict) -> str:
    tests = list(doc["rows"][0]["scores"])
    lines = [
        f"# Camera noise the models were not trained for ({doc['label']})",
        "",
        f"CPU: {cpu_description(doc['machine'])} (quality does not depend on it). Torch, "
        "blind. PSNR dB / SSIM. Simulated camera: `finetune_camera.py`'s (Bayer mosaic, "
        "Poisson–Gaussian sensor noise, edge-aware demosaicking, sharpening, H.264 CRF 28) on "
        "`vid4-walk`, against its noise-free rendering; CC15: real camera noise, single "
        "photos; realistic: `eval`'s camera-like noise at level 30; AWGN: 8-bit, σ = 25.",
        "",
        "| contender | weights | " + " | ".join(tests) + " |",
        "|---|---|" + "---|" * len(tests),
    ]
    for row in doc["rows"]:
        cells = [f"{row['scores'][t]['psnr']:.2f} / {row['scores'][t]['ssim']:.3f}" for t in tests]
        lines.append(f"| {row['label']} | `{row['model']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("contenders", nargs="+", metavar="LABEL=MODEL")
    parser.add_argument("--label", default="native")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/quality/camera")
    args = parser.parse_args()
    noisy, ref = simulated_camera()
    rows = []
    for text in args.contenders:
        label, _, model = text.partition("=")
        scores = {"simulated camera": camera_scores(model, noisy, ref)}
        scores.update(eval_scores(BackendSpec.parse(f"torch:{model}")))
        print(label, {k: v["psnr"] for k, v in scores.items()}, flush=True)
        rows.append({"label": label, "model": Path(model).name, "scores": scores})
    doc = {"label": args.label, "machine": machine_record(), "rows": rows}
    write_report(Path(f"{args.out}_{args.label}"), doc, to_markdown(doc))


if __name__ == "__main__":
    main()
