"""Each tier's int8 export scored on the figure training records, so ``--model auto`` ranks
int8 rungs by what they measure rather than by a fixed penalty.

Training validates on centre 256² crops of the Vid4 sequences at 8-bit AWGN σ = 25
(``metadata.final_validation.val_psnr_vid4_crops_sigma25``). This runs the same crops and
noise through OpenVINO, in fp32 and int8, frame by frame through ``process()`` (blind noise
estimate, motion compensation, state: what the product runs), and with ``--write NAMES``
records the recorded figure minus the int8 loss measured here as
``val_psnr_vid4_crops_sigma25_int8`` in those tiers' weights files (the metadata only: the
network and its exports are unchanged; a file already holding that figure is left as it
is). The other ``--models`` are measured beside them for comparison. The fast-motion crops are
reported too.

    python benchmarks/int8_validation.py --models new-tier,temporal --write new-tier
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from streamdenoise.artifacts import carry_exports, file_sha256
from streamdenoise.backends import create_backend
from streamdenoise.lab.data import VAL_MOTION_DIRS, val_clips
from streamdenoise.lab.speed import machine_record, write_report
from streamdenoise.lab.trainer import psnr
from streamdenoise.models import weights_path
from streamdenoise.models.noise import synthesize
from streamdenoise.models.tiers import QUALITY_METRIC, load_tier

ROOT = Path(__file__).resolve().parents[1]
#: The seeds training validates with (streamdenoise.lab.trainer.train).
SEEDS = {"videos": 12345, "videos-motion": 12346}


def crops(data: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    sets = {"videos": val_clips(data), "videos-motion": val_clips(data, dirs=VAL_MOTION_DIRS)}
    return {
        name: (clean, synthesize(clean, seed=SEEDS[name], kind="awgn", sigma=25 / 255))
        for name, clean in sets.items()
    }


def score(model: str, precision: str, clean: torch.Tensor, noisy: torch.Tensor) -> float:
    """Mean PSNR over the clips, each denoised causally from a reset state."""
    denoiser = create_backend("openvino", model=model, precision=precision, device="cpu")
    frames = (noisy * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()
    scores = []
    try:
        for clip, target in zip(frames, clean, strict=True):
            denoiser.reset()
            out = np.stack([denoiser.process(np.ascontiguousarray(f)) for f in clip])
            image = torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255
            scores.append(psnr(image, target))
    finally:
        denoiser.close()
    return sum(scores) / len(scores)


def record(model: str, value: float, command: str) -> None:
    """Write the int8 figure into the weights file's metadata (atomically); its exports stay
    listed under the file's new digest."""
    path = weights_path(model)
    old_digest = file_sha256(path)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    final = blob["metadata"].setdefault("final_validation", {})
    if final.get(f"{QUALITY_METRIC}_int8") == value:
        return  # unchanged: the file (and so its digest, which keys its exports) stays
    final[f"{QUALITY_METRIC}_int8"] = value
    blob["metadata"]["int8_validation"] = {
        "command": command,
        "runtime": "openvino",
        "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    carry_exports(old_digest, path)


def earlier_rows(path: Path, rows: list[dict]) -> list[dict]:
    """The rows of an earlier report for models this run did not measure (same kernel cap):
    one table of every tier, measured tier by tier as they are trained."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if earlier.get("isa_cap") != os.environ.get("ONEDNN_MAX_CPU_ISA"):
        return []
    measured = {row["model"] for row in rows}
    kept = [row for row in earlier.get("rows", []) if row["model"] not in measured]
    for row in kept:
        row.setdefault("command", earlier.get("command"))
    return kept


def to_markdown(doc: dict) -> str:
    lines = [
        "# int8 on the validation crops training scores (OpenVINO, σ = 25, 8-bit AWGN)",
        "",
        f"`{doc['command']}` (rows of other commands: their `command` in the JSON); CPU: "
        f"{doc['machine']['cpu'].get('model')}; "
        f"ONEDNN_MAX_CPU_ISA={doc['isa_cap'] or 'unset'}. Centre 256² crops, 12 frames per "
        "sequence, through `process()`. `recorded` is the figure the weights file carries "
        "(training's, torch bf16).",
        "",
        "| model | recorded | fp32 | int8 | int8 − fp32 | motion fp32 | motion int8 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['model']} | {r['recorded']:.2f} | {r['videos_fp32']:.2f} | "
            f"{r['videos_int8']:.2f} | {r['videos_int8'] - r['videos_fp32']:+.2f} | "
            f"{r['videos-motion_fp32']:.2f} | {r['videos-motion_int8']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fast,spatial,temporal")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument(
        "--write", default="", metavar="NAMES", help="comma list: record int8 in their weights"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/quality")
    args = parser.parse_args()
    writes = set(filter(None, args.write.split(",")))
    if writes - set(args.models.split(",")):
        parser.error(f"--write names a model not in --models: {sorted(writes)}")
    command = "python " + " ".join(sys.argv)
    sets = crops(args.data)
    rows = []
    for model in args.models.split(","):
        row = {"model": model, "recorded": load_tier(weights_path(model)).quality}
        row["command"] = command
        for name, (clean, noisy) in sets.items():
            for precision in ("fp32", "int8"):
                row[f"{name}_{precision}"] = round(score(model, precision, clean, noisy), 3)
        rows.append(row)
        print(row, flush=True)
    doc = {
        "command": command,
        "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "machine": machine_record(),
        "rows": earlier_rows(args.out / "int8_validation.json", rows) + rows,
    }
    write_report(args.out / "int8_validation", doc, to_markdown(doc))
    # the loss measured here, applied to the figure training recorded: training scores in
    # torch (and the host's flow differs on crops), so raw OpenVINO figures would compare an
    # int8 rung with a float one measured another way
    for row in rows:
        if row["model"] in writes:
            loss = row["videos_fp32"] - row["videos_int8"]
            record(row["model"], round(row["recorded"] - loss, 3), command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
