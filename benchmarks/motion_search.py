"""How well each motion estimator lines the previous frame up with the current one.

A recurrent denoiser averages what its motion compensation puts in place, so the residual
after warping is what it cannot use. For consecutive frames of the validation videos (Vid4
and the fast-motion set, never trained on), the previous *clean* frame — what a good
previous output looks like — is warped onto the current one by the motion each estimator
measures from what it sees in the product (the in-graph search: the current noisy frame
against the previous output; DIS: two noisy frames), and the mean absolute difference to the
current clean frame is reported, 32 px borders left out, in 8-bit steps (lower is better):

- ``none``: the previous frame where it was (no motion compensation);
- ``dis``: OpenCV's DIS dense optical flow, as the ``temporal`` backends run it;
- ``graph-PYRAMID``: the in-graph cost-volume search of ``streamdenoise.models.align``, with
  the softmax sharpness of ``--weights`` (a trained model's) or the untrained start.

    python benchmarks/motion_search.py --weights streamdenoise/models/weights/temporal-gpu.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from streamdenoise.lab.data import image_files, read_rgb
from streamdenoise.lab.speed import cpu_description, machine_record, write_report
from streamdenoise.models.align import PYRAMIDS, CostVolumeAligner
from streamdenoise.models.motion import FlowEstimator, grey_frame, warp_state

ROOT = Path(__file__).resolve().parents[1]
BORDER = 32
CROP = (480, 640)


def sequences(data: Path) -> list[Path]:
    found = [p for p in sorted((data / "val/videos").iterdir()) if p.is_dir()]
    return found + [p for p in sorted((data / "val/videos-motion").iterdir()) if p.is_dir()]


def aligner(pyramid: str, weights: Path | None) -> tuple[CostVolumeAligner, bool]:
    """The search, with the trained sharpness of ``weights`` where it has this pyramid's
    stages (else the untrained start), and whether it got it."""
    module = CostVolumeAligner(pyramid)
    trained = False
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)["state_dict"]
        sharpness = state.get("align.log_sharpness")
        if sharpness is not None and sharpness.shape == module.log_sharpness.shape:
            module.log_sharpness.data = sharpness
            trained = True
    return module.eval(), trained


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()


def residuals(
    frames: list[np.ndarray], sigma: float, searches: dict[str, CostVolumeAligner], seed: int
) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    noisy = [
        np.clip(f + rng.normal(0, sigma / 255, f.shape), 0, 1).astype(np.float32) for f in frames
    ]
    dis = FlowEstimator()
    inner = (slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    out: dict[str, list[float]] = {"none": [], "dis": [], **{k: [] for k in searches}}

    def error(warped: np.ndarray, truth: np.ndarray) -> float:
        return float(np.abs(warped[inner] - truth[inner]).mean() * 255)

    for i in range(1, len(frames)):
        previous, current = frames[i - 1], frames[i]
        out["none"].append(error(previous, current))
        flow = dis.flow(
            grey_frame((noisy[i - 1] * 255).astype(np.uint8)),
            grey_frame((noisy[i] * 255).astype(np.uint8)),
        )
        warped = warp_state(to_tensor(previous).numpy(), flow)[0].transpose(1, 2, 0)
        out["dis"].append(error(warped, current))
        state = torch.cat([to_tensor(previous)] * 2, 1)
        for name, search in searches.items():
            with torch.no_grad():
                warped = search(to_tensor(noisy[i]), state)[0, :3].permute(1, 2, 0).numpy()
            out[name].append(error(warped, current))
    return out


def to_markdown(doc: dict) -> str:
    names = list(doc["mean"])
    lines = [
        f"# Motion search: warp residual at σ = {doc['sigma']:g} (8-bit steps, lower is better)",
        "",
        f"Machine: {cpu_description(doc['machine'])}. {doc['pairs']} frame pairs, "
        f"{CROP[1]}×{CROP[0]} crops, {BORDER} px borders left out; softmax sharpness of "
        f"{', '.join(doc['trained_sharpness']) or 'no search'} from {doc['weights']}, "
        "the others at the untrained start.",
        "",
        "| sequence | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for seq, row in doc["per_sequence"].items():
        lines.append(f"| {seq} | " + " | ".join(f"{row[n]:.2f}" for n in names) + " |")
    lines.append("| **all** | " + " | ".join(f"**{doc['mean'][n]:.2f}**" for n in names) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--frames", type=int, default=6, help="per sequence")
    parser.add_argument("--weights", type=Path, help="a graph-motion model's weights file")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/motion_search")
    args = parser.parse_args()
    torch.set_num_threads(1)
    built = {f"graph-{name}": aligner(name, args.weights) for name in PYRAMIDS}
    searches = {name: search for name, (search, _) in built.items()}
    per_sequence, pooled = {}, {}
    for seq in sequences(args.data):
        frames = [
            read_rgb(f)[: CROP[0], : CROP[1]].astype(np.float32) / 255
            for f in image_files(seq)[: args.frames]
        ]
        found = residuals(frames, args.sigma, searches, seed=len(per_sequence))
        per_sequence[seq.name] = {k: round(float(np.mean(v)), 3) for k, v in found.items()}
        for k, v in found.items():
            pooled.setdefault(k, []).extend(v)
    doc = {
        "sigma": args.sigma,
        "pairs": len(pooled["none"]),
        "weights": str(args.weights) if args.weights else None,
        "trained_sharpness": [name for name, (_, trained) in built.items() if trained],
        "per_sequence": per_sequence,
        "mean": {k: round(float(np.mean(v)), 3) for k, v in pooled.items()},
        "machine": machine_record(),
    }
    write_report(args.out, doc, to_markdown(doc))


if __name__ == "__main__":
    main()
