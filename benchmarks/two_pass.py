"""What ``--two-pass`` buys and costs: quality of the recurrent tiers run forward only and
forward + backward, and the time per frame of each, in one run.

    python benchmarks/two_pass.py --label L

Quality: ``eval``'s protocol (8-bit AWGN, seed 0, the first 20 frames of each
``val/videos`` sequence, 10 of each ``val/videos-motion`` one), torch at its default
precision as in the quality tables, ``wide`` beside them as the per-frame reference; the
two-pass runs go through :class:`~streamdenoise.backends.two_pass.TwoPassDenoiser` (every
frame submitted, one flush at the end), as the pipeline drives it. Time: ms per frame
through ``submit``/``flush`` on the default runtime at 1280×720, both ways interleaved over
``--rounds`` (run it on a quiet machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from suite.report import machine_lines, save_results, table  # noqa: E402

from streamdenoise.backends.base import Denoiser  # noqa: E402
from streamdenoise.lab.image_metrics import psnr  # noqa: E402
from streamdenoise.lab.quality import load_sequences, make_noisy  # noqa: E402
from streamdenoise.lab.speed import machine_record  # noqa: E402
from streamdenoise.runtime import create_denoiser  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "val"
SETS = (("videos", 20), ("videos-motion", 10))
MODELS = ("wide-temporal", "temporal")
CLIP = ROOT.parent / "shared" / "datasets" / "media" / "clips" / "01_dog.mp4"


def denoise_all(denoiser: Denoiser, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Every frame through ``submit``, ``flush`` at the end: what the pipeline does."""
    futures = [denoiser.submit(f) for f in frames]
    denoiser.flush()
    return [f.result() for f in futures]


def quality(sigmas: list[float]) -> list[dict]:
    """PSNR per set, level, model and number of passes (torch at its default precision)."""
    rows = []
    contenders = [("wide", False)] + [(m, two) for m in MODELS for two in (False, True)]
    for set_name, count in SETS:
        seqs = load_sequences(DATA / set_name, count)
        for sigma in sigmas:
            noisy = [make_noisy(s, i, sigma, "awgn", 0)[0] for i, s in enumerate(seqs)]
            for model, two in contenders:
                scores = []
                for seq, frames in zip(seqs, noisy, strict=True):
                    denoiser = create_denoiser("torch", model=model, two_pass=two)
                    precision = denoiser.precision
                    try:
                        outs = denoise_all(denoiser, frames)
                    finally:
                        denoiser.close()
                    pairs = zip(outs, seq.frames, strict=True)
                    scores.append(np.mean([psnr(o, c) for o, c in pairs]))
                psnr_db = round(float(np.mean(scores)), 3)
                row = {"set": set_name, "sigma": sigma, "model": model, "two_pass": two,
                       "precision": precision, "psnr": psnr_db}  # fmt: skip
                print(row, flush=True)
                rows.append(row)
    return rows


def speed(rounds: int, frames: int) -> list[dict]:
    clip = load_sequences(DATA / "videos-motion", frames)[0].frames
    rng = np.random.default_rng(0)
    big = [cv2.resize(f, (1280, 720), interpolation=cv2.INTER_CUBIC) for f in clip]
    noisy = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in big]
    rows = []
    for model in MODELS:
        denoisers = {
            two: create_denoiser("auto", model=model, two_pass=two) for two in (False, True)
        }
        try:
            for d in denoisers.values():
                denoise_all(d, noisy[:4])  # compile and warm up
            spent = {two: [] for two in denoisers}
            for _ in range(rounds):
                for two, d in denoisers.items():
                    d.reset()
                    start = time.perf_counter()
                    denoise_all(d, noisy)
                    spent[two].append((time.perf_counter() - start) / len(noisy) * 1000)
            described = denoisers[False].describe()
        finally:
            for d in denoisers.values():
                d.close()
        base = float(np.median(spent[False]))
        for two, times in spent.items():
            ms = float(np.median(times))
            rows.append({"model": model, "two_pass": two, "runtime": described["backend"],
                         "precision": described["precision"], "ms_per_frame": ms,
                         "ratio": ms / base})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def end_to_end(clip: Path, rounds: int) -> list[dict]:
    """``run CLIP -o file.mp4`` (x264 ``veryfast``, every frame kept) with one pass and two,
    alternating: frames per second written and the e2e p50."""
    import tempfile

    from streamdenoise.pipeline import Pipeline, PipelineConfig

    rows = []
    with tempfile.TemporaryDirectory() as temp:
        for _ in range(rounds):
            for two in (False, True):
                out = Path(temp) / f"two{two}.mp4"
                out.unlink(missing_ok=True)
                config = PipelineConfig(source=str(clip), outputs=[str(out)], status=False,
                                        model="wide-temporal", two_pass=two)  # fmt: skip
                stats = Pipeline(config).run().stats
                rows.append({"two_pass": two, "frames": stats["frames_out"],
                             "fps": stats["fps_out"], "precision": stats["backend"]["precision"],
                             "runtime": stats["backend"]["backend"],
                             "e2e_p50_ms": stats["latency_ms"]["e2e"]["p50"]})  # fmt: skip
                print(rows[-1], flush=True)
    return rows


def render(doc: dict) -> str:
    q, sigmas = doc["quality"], doc["sigmas"]
    score = {(r["set"], r["sigma"], r["model"], r["two_pass"]): r["psnr"] for r in q}
    levels = " / ".join(f"{s:g}" for s in sigmas)
    labels = [("wide", False, "`wide` (per frame)")] + [
        (m, two, f"`{m}`" + (", two passes" if two else ""))
        for m in MODELS
        for two in (False, True)
    ]
    body = [
        [label, *[" / ".join(f"{score[s, x, m, two]:.2f}" for x in sigmas) for s, _ in SETS]]
        for m, two, label in labels
    ]
    gains = [
        [f"`{m}`: two passes − one", *[
            " / ".join(f"{score[s, x, m, True] - score[s, x, m, False]:+.2f}" for x in sigmas)
            for s, _ in SETS
        ]]
        for m in MODELS
    ]  # fmt: skip
    lines = [
        "# Two passes (`--two-pass`): the recurrent tiers forward, and forward + backward",
        "",
        *machine_lines(doc["machine"]),
        "",
        f"PSNR dB at AWGN σ = {levels} (`eval`'s protocol: 8-bit noise, seed 0, the first 20 "
        "(`val/videos`) / 10 (`val/videos-motion`) frames of each sequence, mean over "
        f"sequences; torch {q[0]['precision']}).",
        "",
        *table(["", *[f"val/{s}" for s, _ in SETS]], body + gains),
    ]
    if doc.get("speed"):
        lines += [
            "",
            f"Time per 1280×720 frame through `submit`/`flush` on the default runtime, median of "
            f"{doc['rounds']} interleaved rounds of {doc['frames']} frames:",
            "",
            *table(
                ["model", "runtime", "passes", "ms per frame", "× one pass"],
                [
                    [
                        f"`{r['model']}`",
                        f"{r['runtime']} {r['precision']}",
                        "two" if r["two_pass"] else "one",
                        f"{r['ms_per_frame']:.1f}",
                        f"{r['ratio']:.2f}",
                    ]
                    for r in doc["speed"]
                ],
            ),
        ]
    if doc.get("end_to_end"):
        e2e = doc["end_to_end"]
        lines += [
            "",
            f"End to end: `{Path(doc['clip']).name}` (1280×720 H.264) → `wide-temporal` on "
            f"{e2e[0]['runtime']} {e2e[0]['precision']} → x264 `veryfast` file, every frame "
            "kept, the two ways alternating:",
            "",
            *table(
                ["passes", "frames", "fps written", "e2e p50 ms"],
                [
                    [
                        "two" if r["two_pass"] else "one",
                        str(r["frames"]),
                        f"{r['fps']:.2f}",
                        f"{r['e2e_p50_ms']:.0f}",
                    ]
                    for r in e2e
                ],
            ),
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sigmas",
        type=lambda t: [float(s) for s in t.split(",")],
        default=[20.0, 25.0, 30.0, 50.0],
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=20, help="frames per timed round")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--clip", type=Path, default=CLIP, help="the end-to-end run's input")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality")
    args = parser.parse_args()
    doc = {
        "machine": machine_record(),
        "command": " ".join(sys.argv),
        "sigmas": args.sigmas,
        "rounds": args.rounds,
        "frames": args.frames,
        "clip": str(args.clip),
        "speed": None if args.skip_speed else speed(args.rounds, args.frames),
        "end_to_end": None if args.skip_speed else end_to_end(args.clip, 2),
        "quality": quality(args.sigmas),
    }
    save_results(args.out, "two_pass", args.label, doc, render, lambda *_: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
