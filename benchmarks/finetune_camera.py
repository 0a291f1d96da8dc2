"""Fine-tuning on a camera the models never met, simulated from clean video, per model.

The camera: a clean sequence goes to linear light, through an RGGB Bayer mosaic, gets
Poisson–Gaussian sensor noise, is demosaicked (OpenCV's edge-aware demosaicking), returned to
sRGB, sharpened (unsharp mask) and encoded with heavy H.264 (libx264 CRF 28, 4:2:0) into an MP4 —
none of which the shipped models' training noise contains in this combination (they met
Gaussian, Poisson–Gaussian in sRGB with blotchy chroma, and JPEG/H.264 of those).
Each model is fine-tuned by the real ``streamdenoise finetune`` command on that MP4 alone
(the noisy frames), then it and its fine-tuned copy denoise the whole clip, scored against
the same camera's noise-free rendering (mosaic → demosaic → sharpening, no noise, no
compression): what a perfect denoiser of this camera would output.

Writes ``benchmarks/results/finetune/camera.{json,md}`` and the before/after picture
``docs/img/finetune-camera.png`` (noisy | shipped | fine-tuned | reference, first model).

    .venv/bin/python benchmarks/finetune_camera.py [--models spatial,fixed,temporal]
        [--minutes 3] [--sequence val/videos/vid4-walk]

A model written ``NAME:stills`` is fine-tuned with ``--mode stills`` (the frames taken as
photos: the teacher, or recorrupted pairs if the teacher loses its check).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from finetune_cc15 import cpu_text

from streamdenoise.backends import create_backend
from streamdenoise.lab.data import load_sequence
from streamdenoise.lab.image_metrics import psnr, ssim
from streamdenoise.lab.speed import machine_record

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "finetune"
PICTURE = REPO / "docs" / "img" / "finetune-camera.png"
DATA = REPO.parent / "shared" / "datasets"
# Sensor noise in linear light: variance SHOT·signal + READ², a night-time gain.
SHOT, READ = 0.012, 0.02
CRF = 28
SHARPEN = 0.8


def _linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def camera(frame: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """One frame through the simulated camera's sensor and ISP (no compression).

    ``rng`` None renders it noise-free: the reference a perfect denoiser would produce."""
    lin = _linear(frame.astype(np.float64) / 255)
    h, w = lin.shape[:2]
    mosaic = np.empty((h, w))
    mosaic[0::2, 0::2] = lin[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = lin[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = lin[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = lin[1::2, 1::2, 2]
    if rng is not None:
        mosaic = mosaic + rng.standard_normal(mosaic.shape) * np.sqrt(SHOT * mosaic + READ**2)
    raw = (np.clip(mosaic, 0, 1) * 65535 + 0.5).astype(np.uint16)
    # OpenCV names Bayer patterns from the second row: RGGB data is its "BG" code
    rgb = cv2.cvtColor(raw, cv2.COLOR_BayerBG2RGB_EA).astype(np.float64) / 65535
    out = _srgb(rgb)
    blur = cv2.GaussianBlur(out, (0, 0), 1.0)
    out = out + SHARPEN * (out - blur)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_clip(frames: list[np.ndarray], path: Path) -> None:
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "medium"}
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: h - h % 2, : w - w % 2]))
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def read_clip(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as inp:
        return [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]


def score(model: str, noisy: list[np.ndarray], ref: list[np.ndarray]) -> dict:
    backend = create_backend("torch", model=model)
    outs = [backend.process(f) for f in noisy]
    backend.close()
    per_frame = [psnr(o, r) for o, r in zip(outs, ref, strict=True)]
    return {
        "psnr": round(float(np.mean(per_frame)), 3),
        "ssim": round(float(np.mean([ssim(o, r) for o, r in zip(outs, ref, strict=True)])), 4),
        "frames_worse_than_noisy": int(
            sum(p < psnr(n, r) for p, n, r in zip(per_frame, noisy, ref, strict=True))
        ),
        "outputs": outs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="spatial,fixed,temporal")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--sequence", default="val/videos/vid4-walk")
    parser.add_argument("--max-frames", type=int, default=40)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args, Path(tmp))
    (args.out / "camera.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "camera.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    return 0


def simulate(sequence: str, max_frames: int, clip: Path) -> tuple[list, list]:
    """The camera's MP4 of ``sequence`` written to ``clip``: (its decoded noisy frames, the
    camera's noise-free rendering of each), deterministic (seed 0)."""
    clean = list(load_sequence(DATA / sequence, max_frames))
    rng = np.random.default_rng(0)
    write_clip([camera(f, rng) for f in clean], clip)
    noisy = read_clip(clip)
    ref = [camera(f, None)[: n.shape[0], : n.shape[1]] for f, n in zip(clean, noisy, strict=True)]
    return noisy, ref


def measure(args: argparse.Namespace, tmp: Path) -> dict:
    """Simulate the clip, fine-tune every model on it, score before and after."""
    clip = tmp / "camera.mp4"
    noisy, ref = simulate(args.sequence, args.max_frames, clip)
    noisy_psnr = float(np.mean([psnr(n, r) for n, r in zip(noisy, ref, strict=True)]))
    rows = []
    for entry in args.models.split(","):
        model, _, mode = entry.partition(":")
        weights = tmp / f"camera-{model}-{mode or 'auto'}.pt"
        report = weights.with_suffix(".json")
        command = [
            sys.executable, "-m", "streamdenoise", "finetune", str(clip), "--model", model,
            "--minutes", str(args.minutes), "-o", str(weights), "--report", str(report),
            *(["--mode", mode] if mode else []),
        ]  # fmt: skip
        begin = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        minutes = (time.monotonic() - begin) / 60
        before = score(model, noisy, ref)
        row = {
            "model": entry,
            "minutes_spent": round(minutes, 2),
            "noisy_psnr": round(noisy_psnr, 3),
            "shipped": {k: v for k, v in before.items() if k != "outputs"},
            "finetune_exit": done.returncode,
            "finetune_said": (done.stdout if done.returncode == 0 else done.stderr).splitlines()[
                -1:
            ],
        }
        if report.exists():
            row["guard"] = json.loads(report.read_text())["finetune"]["validation"]
            row["guard"].pop("history", None)
        if done.returncode == 0:
            after = score(str(weights), noisy, ref)
            row["finetuned"] = {k: v for k, v in after.items() if k != "outputs"}
            row["gain_db"] = round(after["psnr"] - before["psnr"], 3)
            if entry == args.models.split(",")[0]:
                picture(noisy, before["outputs"], after["outputs"], ref, PICTURE)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {
        "machine": machine_record(),
        "sequence": args.sequence,
        "frames": len(noisy),
        "camera": {"shot": SHOT, "read": READ, "crf": CRF, "sharpen": SHARPEN},
        "minutes_budget": args.minutes,
        "rows": rows,
    }


def picture(noisy, before, after, ref, out: Path, t: int = 20) -> None:
    """Crops of one frame side by side: noisy | shipped | fine-tuned | reference."""
    t = min(t, len(noisy) - 1)
    h, w = ref[t].shape[:2]
    y, x, s = h // 2 - 100, w // 2 - 100, 200
    tiles = [a[t][y : y + s, x : x + s] for a in (noisy, before, after, ref)]
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.concatenate(tiles, 1)[:, :, ::-1])


def method_text(row: dict) -> str:
    guard = row.get("guard") or {}
    method = guard.get("method", "–")
    check = guard.get("teacher_check")
    if check and not check["passed"]:
        method += " (teacher lost its check)"
    elif guard.get("teacher", "none") != "none":
        method += f" ({guard['teacher']})"
    return method


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Simulated camera ({result['sequence']}, {result['frames']} frames; Bayer mosaic + "
        f"Poisson–Gaussian (shot {SHOT}, read {READ}) + demosaic + sharpening + H.264 CRF "
        f"{CRF}). PSNR / SSIM against the camera's noise-free rendering. CPU: "
        f"{cpu_text(m)}; {result['minutes_budget']:g}-minute budget per model.",
        "",
        "| model | noisy | shipped | fine-tuned | gain | guard (est. gain) | method | minutes "
        "| steps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ft = r.get("finetuned")
        est = (r.get("guard") or {}).get("estimated_gain_db")
        lines.append(
            f"| {r['model']} | {r['noisy_psnr']:.2f} | {r['shipped']['psnr']:.2f} / "
            f"{r['shipped']['ssim']:.3f} | "
            + (
                f"{ft['psnr']:.2f} / {ft['ssim']:.3f} | {r['gain_db']:+.2f} dB"
                if ft
                else "refused | –"
            )
            + f" | {'n/a' if est is None else f'{est:+.2f} dB'} | {method_text(r)} | "
            f"{r['minutes_spent']:.1f} | {(r.get('guard') or {}).get('steps', '–')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
