"""Recurrence deep inside a CPU tier: what a feature state at 1/8–1/16 resolution costs
``wide``, and what it buys once trained.

    python benchmarks/deep_state_probe.py time --label xeon-amx
    taskset -c 0 python benchmarks/deep_state_probe.py train d16s --minutes 35 --work probe &
    taskset -c 1 python benchmarks/deep_state_probe.py train wide --minutes 35 --work probe
    python benchmarks/deep_state_probe.py report probe/d16s.pt probe/wide.pt --label xeon-amx

At quarter resolution a recurrent state costs a thin CPU network half its time again
(``recurrent_cpu_probe.py``): its element-wise work weighs what the convolutions do. Here
the state is the U-Net's own features at its deeper levels — 64 channels at 1/8, 128 at 1/16
of ``wide``, where a 720p frame is 160×90 or 80×45 pixels — so the recurrence touches 3–6×
fewer elements than a quarter-resolution state. At each chosen level the previous frame's
features (moved along the motion, when there is a search) and the current ones enter a 1×1
convolution that starts as "the current features only": the candidate begins as ``wide``
and learns how much of the past to use. The search (``streamdenoise.models.align``'s cost
volume) compares grey copies of the noisy frames at 1/16 (±2 px there: ±32 full-resolution
px) and, when the 1/8 level is kept too, again at 1/8 (±1 px) around that estimate.

``time`` exports ``wide`` and each candidate with random weights (speed does not depend on
the values) and times them through OpenVINO in interleaved rounds, the state kept as graph
inputs and outputs and as OpenVINO state (``MakeStateful``). ``train`` fine-tunes one
candidate (or ``wide`` itself, the control) from the shipped ``wide`` weights on clips of
``--clip-frames`` frames, on the threads it is given (run the candidates side by side, one core
each, for the same minutes). ``report`` writes JSON + markdown + PNG under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from recurrent_cpu_probe import relative_rows, time_models  # noqa: E402
from suite.report import machine_lines, plot_both_sets, save_results, table  # noqa: E402

from streamdenoise.lab.speed import machine_record  # noqa: E402
from streamdenoise.models import align, load_model  # noqa: E402
from streamdenoise.models.macs import count_module_macs  # noqa: E402

#: candidate -> (U-Net levels that keep a state: 1 = 1/8, 2 = 1/16, searched?)
CANDIDATES = {
    "d16": ((2,), False),
    "d16s": ((2,), True),
    "d8s": ((1, 2), True),
}
GREY_SCALE = 16  # the grey copies the search compares, at 1/16 resolution


class DeepStateWide(nn.Module):
    """``forward(noisy, sigma, *state) -> (image, *state)``: ``wide`` with its features at
    ``levels`` fused with the previous frame's. State: each level's features, then (with a
    search) the previous noisy frame's grey copy at 1/16."""

    def __init__(self, wide: nn.Module, levels: tuple[int, ...], search: bool) -> None:
        super().__init__()
        self.wide, self.levels = wide, levels
        channels = wide.config.channels
        self.fuse = nn.ModuleDict()
        for level in levels:
            conv = nn.Conv2d(2 * channels[level], channels[level], 1)
            with torch.no_grad():  # starts as "the current features only"
                conv.weight.zero_()
                conv.bias.zero_()
                conv.weight[:, : channels[level], 0, 0] = torch.eye(channels[level])
            self.fuse[str(level)] = conv
        self.search = None
        if search:
            self.search = align.CostVolumeAligner("coarse")
            finest = min(levels)  # factors relative to the finest kept level's grid
            top = GREY_SCALE // 2 ** (finest + 2)
            self.search.stages = ((top, 2, 3), (1, 1, 3)) if top > 1 else ((1, 2, 3),)
        self.register_buffer("grey", torch.tensor(align.GREY_WEIGHTS).view(1, 3, 1, 1))

    def state_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        channels = self.wide.config.channels
        shapes = [
            (channels[lv], height // 2 ** (lv + 2), width // 2 ** (lv + 2)) for lv in self.levels
        ]
        if self.search is not None:
            finest = 2 ** (min(self.levels) + 2)
            shapes.append((1, height // finest, width // finest))
        return shapes

    def initial_state(self, noisy: torch.Tensor) -> list[torch.Tensor]:
        """After a reset: no past (zero features, fused as if absent at first) — the first
        frame is denoised as ``wide`` would, since the fusion starts as the identity."""
        n, _, h, w = noisy.shape
        shapes = self.state_shapes(h, w)
        state = [noisy.new_zeros(n, *s) for s in shapes[: len(self.levels)]]
        if self.search is not None:
            state.append(self._grey(noisy))
        return state

    def _grey(self, noisy: torch.Tensor) -> torch.Tensor:
        """The frame's grey copy averaged over f×f blocks, as one strided convolution (the
        runtimes' fastest path over a full-resolution input)."""
        factor = 2 ** (min(self.levels) + 2)
        kernel = self.grey.expand(1, 3, factor, factor) / factor**2
        return F.conv2d(noisy, kernel, stride=factor)

    def forward(self, noisy, sigma, *state):
        net = self.wide
        past = dict(zip(self.levels, state, strict=False))
        grey = flow = None
        if self.search is not None:
            grey = self._grey(noisy)
            flow = self.search.grey_flow(grey.detach(), state[-1].detach())
        skips = [net.enc0(F.relu(net.head(noisy) + net.sigma_bias(sigma)))]
        kept = []
        for level, (down, enc) in enumerate(zip(net.downs, net.encs, strict=True), start=1):
            x = down(skips[-1])
            if level in past:
                previous = past[level]
                if flow is not None:
                    scale = 2 ** (level - min(self.levels))
                    level_flow = F.avg_pool2d(flow, scale) / scale if scale > 1 else flow
                    previous = align.warp(previous, level_flow)
                x = F.relu(self.fuse[str(level)](torch.cat([x, previous], 1)))
            skips.append(enc(x))
            if level in past:
                kept.append(skips[-1])
        y = skips.pop()
        for up, dec in zip(reversed(net.ups), reversed(net.decs), strict=True):
            y = dec(F.relu(up(y) + skips.pop()))
        image = F.pixel_shuffle(net.tail(y), net.config.unshuffle)
        return (image, *kept, *([grey] if grey is not None else []))


def build(name: str) -> nn.Module:
    """``wide`` (shipped weights) or a candidate around it."""
    wide = load_model("wide")[0]
    if name == "wide":
        return wide
    levels, search = CANDIDATES[name]
    return DeepStateWide(wide, levels, search)


def gmac_720p(model: nn.Module) -> float:
    noisy, sigma = torch.rand(1, 3, 720, 1280), torch.full((1, 3, 1, 1), 0.1)
    if not isinstance(model, DeepStateWide):
        return count_module_macs(model, (noisy, sigma)) / 1e9
    inputs = (noisy, sigma, *model.initial_state(noisy))
    total = count_module_macs(model, inputs)
    if model.search is not None:
        h, w = model.state_shapes(720, 1280)[-1][1:]
        total += model.search.macs(h, w) - 2 * 3 * h * w  # the grey copy is a conv already
    return total / 1e9


def time_candidates(args: argparse.Namespace) -> dict:
    width, height = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    noisy, sigma = torch.rand(1, 3, height, width), torch.full((1, 3, 1, 1), 0.1)
    models, gmac = {}, {}
    for name in ["wide", *CANDIDATES]:
        model = build(name).eval()
        gmac[name] = gmac_720p(model)
        state = model.initial_state(noisy) if isinstance(model, DeepStateWide) else []
        models[name] = (model, (noisy, sigma, *(torch.rand_like(s) for s in state)))
    times = time_models(models, args.precisions.split(","), args.rounds, args.frames)
    return {"size": args.size, "rounds": args.rounds, "frames_per_round": args.frames,
            "rows": relative_rows(times, gmac, "wide")}  # fmt: skip


def run_clip(model: nn.Module, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Clips (N, T, 3, H, W) denoised causally, the state carried from frame to frame."""
    if not isinstance(model, DeepStateWide):
        return torch.stack([model(noisy[:, t], sigma[:, t]) for t in range(noisy.shape[1])], 1)
    state, outs = model.initial_state(noisy[:, 0]), []
    for t in range(noisy.shape[1]):
        image, *state = model(noisy[:, t], sigma[:, t], *state)
        outs.append(image)
    return torch.stack(outs, 1)


def train_candidate(args: argparse.Namespace) -> None:
    """Fine-tune one candidate from ``wide``'s weights."""
    torch.manual_seed(args.seed)
    fine_tune(args, build(args.name), run_clip)


def fine_tune(args: argparse.Namespace, model: nn.Module, clip_fn) -> None:
    """Fine-tune ``model`` (``clip_fn(model, noisy, sigma)`` denoises clips causally) for
    ``args.minutes``; validate every ``--val-every`` s; save it with its history under
    ``args.work`` as ``args.name``.pt."""
    from streamdenoise import hardware
    from streamdenoise.lab import trainer
    from streamdenoise.lab.data import VAL_MOTION_DIRS, ClipSampler, val_clips
    from streamdenoise.models.noise import synthesize

    model = model.train()
    bf16 = hardware.cpu().bf16  # as `streamdenoise train` decides
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    sampler = ClipSampler.load(args.data, 0.6)
    sets = {"vid4": val_clips(args.data, 12, 256), "motion": val_clips(args.data, 12, 256,
            VAL_MOTION_DIRS)}  # fmt: skip
    noisy_sets = {
        key: synthesize(clean, seed=12345 + i, kind="awgn", sigma=25 / 255)
        for i, (key, clean) in enumerate(sets.items())
    }

    @torch.no_grad()
    def validate() -> dict:
        model.eval()
        scores = {}
        for key, clean in sets.items():
            noisy = noisy_sets[key]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = clip_fn(model, noisy, trainer.frame_sigmas(noisy)).float()
            scores[key] = sum(trainer.psnr(out[i], clean[i]) for i in range(len(clean))) / len(
                clean
            )
            # frames 4 on: what the recurrence adds once it has a past
            scores[key + "_late"] = sum(
                trainer.psnr(out[i, 3:], clean[i, 3:]) for i in range(len(clean))
            ) / len(clean)
        model.train()
        return scores

    history, step, start = [{"step": 0, "minutes": 0.0, **validate()}], 0, time.monotonic()
    print(json.dumps(history[-1]), flush=True)
    last_val = start
    while time.monotonic() - start < args.minutes * 60:
        seed = args.seed * 1_000_003 + step
        clean = sampler.batch(seed, args.batch, args.clip_frames, args.patch)
        noisy = synthesize(clean, seed, p_unclipped=0.5)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = clip_fn(model, noisy, trainer.frame_sigmas(noisy))
        trainer.optimizer_step(opt, model, trainer.training_loss(out.float(), clean, "mse"))
        step += 1
        if time.monotonic() - last_val > args.val_every:
            minutes = round((time.monotonic() - start) / 60, 2)
            history.append({"step": step, "minutes": minutes, **validate()})
            print(json.dumps(history[-1]), flush=True)
            last_val = time.monotonic()
    history.append({"step": step, "minutes": round((time.monotonic() - start) / 60, 2),
                    **validate()})  # fmt: skip
    print(json.dumps(history[-1]), flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    recipe = {k: getattr(args, k) for k in ("minutes", "lr", "batch", "patch", "seed")}
    recipe["frames"] = args.clip_frames
    torch.save({"name": args.name, "state_dict": model.state_dict(), "history": history,
                "recipe": recipe, "bf16": bf16, "command": " ".join(sys.argv)},
               args.work / f"{args.name}.pt")  # fmt: skip


def training_runs(paths: list[str]) -> list[dict]:
    """What the report shows of each file :func:`fine_tune` saved."""
    runs = [torch.load(Path(p), map_location="cpu", weights_only=False) for p in paths]
    return [{k: run[k] for k in ("name", "history", "recipe", "command")} for run in runs]


def render(doc: dict) -> str:
    lines = [
        "# Recurrent feature state at 1/8–1/16 resolution in `wide`",
        "",
        *machine_lines(doc["machine"]),
        "",
    ]
    if doc.get("speed"):
        speed = doc["speed"]
        lines += [
            f"## Speed: OpenVINO CPU, {speed['size']}, float input, median of "
            f"{speed['rounds']} interleaved rounds of {speed['frames_per_round']} frames, "
            "random weights",
            "",
        ]
        lines += table(
            ["model", "state kept as", "precision", "GMAC / 720p", "ms / frame", "× wide"],
            [
                [
                    r["model"],
                    r["state"] or "-",
                    r["precision"],
                    f"{r['gmac_720p']:.3f}",
                    f"{r['ms_per_frame']:.2f}",
                    f"{r['vs_wide']:.3f}",
                ]
                for r in speed["rows"]
            ],
        )
        lines.append("")
    lines += quality_section(doc, "`wide`")
    return "\n".join(lines) + "\n"


def quality_section(doc: dict, start: str) -> list[str]:
    """The fine-tuning runs of ``doc["training"]`` (all from the weights ``start`` names, in
    markdown) as a markdown section: each set's validation PSNR before → after."""
    lines: list[str] = []
    if doc.get("training"):
        recipe = doc["training"][0]["recipe"]
        lines += [
            f"## Quality: fine-tuned from {start}, {recipe['minutes']:g} min each on one core "
            f"(side by side), clips of {recipe['frames']} frames × {recipe['batch']}, patch "
            f"{recipe['patch']}, lr {recipe['lr']}, MSE",
            "",
            "Validation PSNR at σ = 25 (8-bit AWGN), 12 frames of 256² centre crops: the Vid4 "
            "crops and the fast-motion crops, over all frames / over frames 4–12.",
            "",
        ]
        rows = []
        for run in doc["training"]:
            first, last = run["history"][0], run["history"][-1]
            rows.append(
                [run["name"], str(last["step"])]
                + [f"{first[k]:.2f} → {last[k]:.2f}" for k in ("vid4", "vid4_late")]
                + [f"{first[k]:.2f} → {last[k]:.2f}" for k in ("motion", "motion_late")]
            )
        lines += table(
            ["model", "steps", "Vid4 all", "Vid4 4–12", "motion all", "motion 4–12"], rows
        )
    return lines


def plot(doc: dict, path: Path) -> None:
    if not doc.get("training"):
        return
    curves = [
        (
            run["name"],
            [h["minutes"] for h in run["history"]],
            [h["vid4_late"] for h in run["history"]],
            [h["motion_late"] for h in run["history"]],
        )
        for run in doc["training"]
    ]
    plot_both_sets(path, curves, "σ = 25, frames 4–12", "minutes of fine-tuning")


def add_training_args(parser: argparse.ArgumentParser, work: str) -> None:
    """The options of :func:`fine_tune` and of a probe's report."""
    parser.add_argument("--clip-frames", type=int, default=5, help="train: frames per clip")
    parser.add_argument("--minutes", type=float, default=35.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--patch", type=int, default=192)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--val-every", type=float, default=180.0)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--work", type=Path, default=Path(work))
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")


def probe_args(description: str, candidates: tuple[str, ...], work: str) -> argparse.Namespace:
    """The command line of a fine-tuning probe: ``train NAME`` (one of ``candidates``; seeds
    torch) or ``report FILE.pt...``."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("action", choices=("train", "report"))
    parser.add_argument("name", nargs="+", help=f"train: {' or '.join(candidates)}; report: .pt")
    add_training_args(parser, work)
    args = parser.parse_args()
    if args.action == "train":
        if len(args.name) != 1 or args.name[0] not in candidates:
            parser.error(f"train takes one of: {', '.join(candidates)}")
        args.name = args.name[0]
        torch.manual_seed(args.seed)
    return args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("time", "train", "report"))
    parser.add_argument("name", nargs="*", help="train: a candidate or wide; report: .pt files")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--precisions", default="f32,bf16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=20, help="time: timed frames per round")
    add_training_args(parser, "deep-state-probe")
    parser.add_argument("--speed", type=Path, help="report: a speed JSON from `time`")
    args = parser.parse_args()
    if args.action == "train":
        if len(args.name) != 1 or args.name[0] not in ("wide", *CANDIDATES):
            parser.error(f"train takes one of: wide, {', '.join(CANDIDATES)}")
        args.name = args.name[0]
        train_candidate(args)
        return 0
    doc: dict = {"machine": machine_record(), "command": " ".join(sys.argv)}
    if args.action == "time":
        doc["speed"] = time_candidates(args)
    else:
        if args.speed:
            doc["speed"] = json.loads(args.speed.read_text())["speed"]
        doc["training"] = training_runs(args.name)
    save_results(args.out, "deep_state_probe", args.label, doc, render, plot)
    print(render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
