"""int8 recipes for one model: which layers are quantised and how activation ranges are set,
against the float model, on the validation videos — what each recipe costs in PSNR.

Each recipe quantises the model's float export with ``export --format onnx-int8`` (the same
calibration images as the shipped exports) into a scratch cache; the weights are copied once
per recipe under its own name (same network, so the backend finds that recipe's export), and
``streamdenoise eval`` scores them all in one run. Speed is measured elsewhere
(``benchmarks/tier_speed.py``, ``benchmarks/auto_live.py``).

    python benchmarks/int8_recipes.py --model fast
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from streamdenoise.models import weights_path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fast")
    parser.add_argument("--sigma", default="10,25,50")
    parser.add_argument("--max-frames", default="10")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/quality")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="int8-recipes-") as tmp:
        env = {**os.environ, "STREAMDENOISE_CACHE_DIR": str(Path(tmp) / "cache")}
        backends = [f"openvino:{args.model}@fp32"]
        for output, ranges in itertools.product((False, True), ("minmax", "percentile")):
            name = f"{args.model}-int8-{'output' if output else 'float-output'}-{ranges}"
            blob = torch.load(weights_path(args.model), map_location="cpu", weights_only=False)
            blob["metadata"] = {**blob.get("metadata", {}), "int8_recipe_of": args.model}
            copy = Path(tmp) / f"{name}.pt"
            torch.save(blob, copy)
            exports = Path(tmp) / "cache" / "onnx"
            command = [sys.executable, "-m", "streamdenoise", "export", "--model", str(copy),
                       "--format", "onnx-int8", "--calibration", str(DATA / "train"),
                       "--int8-ranges", ranges, "--out", str(exports)]  # fmt: skip
            subprocess.run(command + (["--int8-output"] if output else []), env=env, check=True)
            backends.append(f"openvino:{copy}@int8")
        stem = args.out / f"int8_recipes_{args.model}"
        subprocess.run(
            [sys.executable, "-m", "streamdenoise", "eval", "--data", str(DATA / "val/videos"),
             "--data", str(DATA / "val/videos-motion"), "--sigma", args.sigma,
             "--max-frames", args.max_frames, "--backends", ",".join(backends),
             "--json", f"{stem}.json", "--markdown", f"{stem}.md"],
            env=env, check=True,
        )  # fmt: skip
        for suffix in (".json", ".md"):  # the scratch folder's path says nothing to a reader
            path = stem.with_suffix(suffix)
            path.write_text(path.read_text().replace(f"{tmp}/", ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
