"""What compressed reference frames do to the scores: the same contenders on Vid4 as it is
and re-encoded as JPEG, and on the fast-motion set as it is and shrunk as training shrinks it.

    STREAMDENOISE_VAPOURSYNTH_PYTHON=~/.vs/bin/python \\
        python benchmarks/jpeg_reference_probe.py --label L

Three of the four ``val/videos-motion`` sequences were re-saved near JPEG quality 75 by
their source; their "clean" frames keep the 8×8 blocks, which no denoiser trained on
block-free targets reproduces, and which BM3D's 8×8 DCT represents with few coefficients.
Vid4's frames are PNG: re-encoding them at quality 90 (DAVIS's own) and 75 shows, on the
same content and motion, how much of a contender's score (and of the gaps between
contenders) the reference's compression moves. The fast-motion set shrunk by training's
factor (the blocks fall below a pixel) is the converse check on the set itself. Every
variant is scored with ``eval``'s protocol (8-bit AWGN, seed 0, every frame of the first
20 / 10, causal); the variants' frames are written as PNG under ``--work``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from suite.report import machine_lines, save_results, table  # noqa: E402

from streamdenoise.lab.data import DAVIS_SCALE  # noqa: E402
from streamdenoise.lab.quality import BackendSpec, evaluate, load_sequences  # noqa: E402
from streamdenoise.lab.speed import machine_record  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "val"
CONTENDERS = "torch:wide,torch:wide-temporal,vbm3d"
#: (variant name, source set, frames scored, how each clean frame is changed)
VARIANTS = (
    ("val/videos", "videos", 20, None),
    ("val/videos, JPEG q90", "videos", 20, ("jpeg", 90)),
    ("val/videos, JPEG q75", "videos", 20, ("jpeg", 75)),
    ("val/videos-motion", "videos-motion", 10, None),
    (f"val/videos-motion, shrunk ×{DAVIS_SCALE:g}", "videos-motion", 10, ("shrink", DAVIS_SCALE)),
)


def changed(rgb: np.ndarray, change: tuple[str, float]) -> np.ndarray:
    """One clean frame re-encoded as JPEG (OpenCV: 4:2:0, as DAVIS's) or shrunk (area)."""
    kind, value = change
    if kind == "jpeg":
        _, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(value)])
        return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    h, w = rgb.shape[:2]
    size = (round(w * value), round(h * value))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def variant_folder(work: Path, index: int, source: str, frames: int, change) -> Path:
    """The variant's frames as PNG folders (one per sequence), ``eval``'s input layout."""
    if change is None:
        return DATA / source
    root = work / f"variant{index}"
    for seq in load_sequences(DATA / source, frames):
        folder = root / seq.name
        folder.mkdir(parents=True, exist_ok=True)
        for k, frame in enumerate(seq.frames):
            cv2.imwrite(str(folder / f"{k:05d}.png"), changed(frame, change)[..., ::-1])
    return root


def measure(args: argparse.Namespace, work: Path) -> list[dict]:
    specs = [BackendSpec.parse(s) for s in args.contenders.split(",")]
    rows = []
    for index, (name, source, frames, change) in enumerate(VARIANTS):
        folder = variant_folder(work, index, source, frames, change)
        report = evaluate([folder], args.sigmas, specs, max_frames=frames, log=print)
        for r in report["results"]:
            rows.append(
                {key: r[key] for key in ("backend", "sigma", "psnr", "flicker")} | {"variant": name}
            )
    return rows


def render(doc: dict) -> str:
    rows, sigmas = doc["rows"], doc["sigmas"]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    score = {(r["variant"], r["backend"], r["sigma"]): r["psnr"] for r in rows}
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    levels = " / ".join(f"{s:g}" for s in sigmas)

    def cells(variant: str, value) -> list[str]:
        return [" / ".join(f"{value(variant, s):+.2f}" for s in sigmas)]

    first, second = backends[0], backends[1]
    body = [
        [v, *[" / ".join(f"{score[v, b, s]:.2f}" for s in sigmas) for b in backends]]
        for v in variants
    ]
    gaps = [
        [
            v,
            *cells(v, lambda v, s: score[v, second, s] - score[v, first, s]),
            *[
                cell
                for b in backends[2:]
                for cell in cells(v, lambda v, s, b=b: score[v, b, s] - score[v, second, s])
            ],
        ]
        for v in variants
    ]
    lines = [
        "# Compressed reference frames: the same contenders on clean and JPEG'd targets",
        "",
        *machine_lines(doc["machine"]),
        "",
        f"PSNR dB at AWGN σ = {levels} (`eval`'s protocol: 8-bit noise, seed 0, causal, "
        "every frame of the first 20 (Vid4) / 10 (fast motion), mean over sequences). "
        "JPEG: OpenCV, 4:2:0, the re-encoded frame is the clean target the noise is "
        f"added to; shrunk: area resampling, training's factor for DAVIS frames.",
        "",
        *table(["variant", *backends], body),
        "",
        f"Gaps, dB at σ = {levels}:",
        "",
        *table(
            ["variant", f"{second} − {first}", *[f"{b} − {second}" for b in backends[2:]]],
            gaps,
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contenders", default=CONTENDERS)
    parser.add_argument("--sigmas", type=lambda t: [float(s) for s in t.split(",")],
                        default=[20.0, 30.0, 50.0])  # fmt: skip
    parser.add_argument("--work", type=Path, help="where the variants' frames go (temporary)")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        work = args.work or Path(temp)
        doc = {
            "machine": machine_record(),
            "command": " ".join(sys.argv),
            "sigmas": args.sigmas,
            "rows": measure(args, work),
        }
    save_results(args.out, "jpeg_reference_probe", args.label, doc, render, lambda *_: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
