"""Evaluation runner: clean data + synthetic noise → every backend → PSNR/SSIM/flicker/fps.

Sequences are processed causally, frame by frame, through the same backend objects the
pipeline uses, with ``reset()`` between sequences. Noise is drawn from fixed seeds, so every
backend sees identical noisy frames and reruns reproduce the numbers.

Protocols: ``quantized`` (default) clips and rounds the noisy input to 8 bits, as a camera
delivers it; ``float`` keeps unclipped float noise (as in published tables) for every backend
that takes float input (the neural models, ``cbm3d``, ``vbm3d``; the ``identity`` row is then
the unclipped noisy input's PSNR), while 8-bit-only filters still get the quantized frames
(their rows say ``input: 8-bit``). Denoised outputs are always clipped and rounded to 8 bits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamdenoise.backends.base import Denoiser
from streamdenoise.backends.identity import IdentityDenoiser
from streamdenoise.errors import UsageError, UserError
from streamdenoise.lab.data import IMAGE_EXTS, image_files, read_rgb
from streamdenoise.lab.image_metrics import flicker, psnr, ssim
from streamdenoise.lab.speed import cpu_description
from streamdenoise.models import DEFAULT_MODEL, MODEL_NAMES
from streamdenoise.models.noise import realistic_eval_noise

# The noise level of real pairs: what the camera did, nothing synthesised.
REAL = "real"
# Classical filters whose settings the real-pairs evaluation searches (evaluation.tune.grid).
GRID_BACKENDS = ("hqdn3d", "nlmeans", "atadenoise", "opencv-nlm")
VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".ts")


@dataclass
class Sequence:
    name: str
    frames: list[np.ndarray]  # clean H×W×3 uint8 RGB
    noisy: list[np.ndarray] | None = None  # real noisy frames (pairs folders), else synthesised


# a pairs folder: ``<name>_noisy.<ext>`` next to ``<name>_clean.<ext>``
PAIR_SUFFIXES = ("_noisy", "_clean")


def load_pairs(path: Path) -> list[Sequence] | None:
    """Real noisy/clean pairs in ``path``, or None when it is not a pairs folder."""
    if not path.is_dir():
        return None
    found: dict[str, dict[str, Path]] = {}
    for f in image_files(path):
        for kind in PAIR_SUFFIXES:
            if f.stem.endswith(kind):
                found.setdefault(f.stem[: -len(kind)], {})[kind] = f
    if not found:
        return None
    lonely = sorted(name for name, kinds in found.items() if len(kinds) != 2)
    if lonely:
        raise UserError(f"{path}: {lonely[0]} has no {'/'.join(PAIR_SUFFIXES)} partner")
    seqs = []
    for name, kinds in sorted(found.items()):
        noisy, clean = read_rgb(kinds["_noisy"]), read_rgb(kinds["_clean"])
        if noisy.shape != clean.shape:
            raise UserError(f"{path}: {name}'s noisy and clean images differ in size")
        seqs.append(Sequence(name, [clean], [noisy]))
    return seqs


@dataclass(frozen=True)
class BackendSpec:
    """``label`` as reported; ``name`` in the backend registry; optional model/precision."""

    label: str
    name: str
    model: str | None = None
    precision: str | None = None
    #: ``+two-pass``: the recurrent model forward and backward, as ``run --two-pass``.
    two_pass: bool = False

    @property
    def neural(self) -> bool:
        return self.model is not None

    @classmethod
    def parse(cls, text: str) -> BackendSpec:
        """A shipped model's name (torch backend), ``BACKEND[:MODEL][@PRECISION]`` (a neural
        runtime without a model runs the default one, as ``run`` does), ``+two-pass`` after
        either for two passes."""
        spec, _, passes = text.partition("+")
        if passes not in ("", "two-pass"):
            raise UsageError(f"unknown backend suffix +{passes} in {text!r} (known: +two-pass)")
        body, _, precision = spec.partition("@")
        name, _, model = body.partition(":")
        if name in MODEL_NAMES:
            name, model = "torch", name
        if name in ("torch", "onnxruntime", "openvino", "tensorrt") and not model:
            model = DEFAULT_MODEL
        return cls(text, name, model or None, precision or None, bool(passes))


def parse_sigmas(text: str) -> list[float]:
    try:
        sigmas = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--sigma takes comma-separated numbers, got {text!r}") from None
    if not sigmas or any(s < 0 or s > 255 for s in sigmas):
        raise UsageError(f"--sigma values must be in [0, 255], got {text!r}")
    return sigmas


def load_sequences(path: Path, max_frames: int | None = None, still: int = 1) -> list[Sequence]:
    """A clean video file, a folder of frame folders, or a folder of still images.

    ``still`` > 1 holds each still image for that many frames — a fixed camera looking at a
    still scene, with fresh noise in every frame: the surveillance case, which no clean
    video in the validation set shows."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTS:
            raise UserError(f"{path} is not a video file ({', '.join(VIDEO_EXTS)})")
        return [Sequence(path.stem, _decode_video(path, max_frames))]
    if not path.is_dir():
        raise UserError(f"evaluation data {path} not found")
    pairs = load_pairs(path)
    if pairs is not None:
        return pairs
    subdirs = sorted(p for p in path.iterdir() if p.is_dir() and image_files(p))
    if subdirs:
        return [
            Sequence(d.name, [read_rgb(f) for f in image_files(d)[:max_frames]]) for d in subdirs
        ]
    files = image_files(path)
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_EXTS)}) or frame folders in {path}")
    return [Sequence(f.stem, [read_rgb(f)] * still) for f in files]


def _decode_video(path: Path, max_frames: int | None) -> list[np.ndarray]:
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as err:
        raise UserError(f"cannot decode {path}: {err}") from err
    if not frames:
        raise UserError(f"no video frames in {path}")
    return frames


def make_noisy(
    seq: Sequence, index: int, sigma: float, noise: str, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(8-bit noisy frames, float noisy frames on [0, 1]) for one sequence and level.

    Real pairs are returned as they are, whatever the level."""
    if seq.noisy is not None:
        return seq.noisy, [f.astype(np.float32) / 255 for f in seq.noisy]
    if noise == "realistic":
        u8 = list(realistic_eval_noise(np.stack(seq.frames), sigma, seed + 7919 * index))
        return u8, [f.astype(np.float32) / 255 for f in u8]
    rng = np.random.default_rng([seed, index, round(sigma * 100)])
    floats, u8 = [], []
    for clean in seq.frames:
        x = clean.astype(np.float32) / 255 + rng.standard_normal(clean.shape, np.float32) * (
            sigma / 255
        )
        floats.append(x)
        u8.append((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))
    return u8, floats


def create(spec: BackendSpec, sigma_hint: float | None) -> Denoiser:
    """Neural backends run blind; classical ones get the true noise level as a hint."""
    from streamdenoise.backends import create_backend

    if spec.two_pass:  # as run builds it (a model without a past is refused there)
        from streamdenoise.runtime import create_denoiser

        return create_denoiser(spec.name, model=spec.model, precision=spec.precision, two_pass=True)
    if spec.neural:
        return create_backend(spec.name, model=spec.model, precision=spec.precision)
    return create_backend(spec.name, precision=spec.precision, sigma=sigma_hint)


def run_backend(
    backend: Denoiser, clean: list[np.ndarray], noisy: list[np.ndarray]
) -> tuple[list[np.ndarray], float]:
    """Causal frame-by-frame processing; returns (outputs, seconds spent in process). A
    backend that answers late (``+two-pass``) gets every frame, then a flush."""
    backend.reset()
    if backend.frames_late:
        start = time.perf_counter()
        futures = [backend.submit(frame) for frame in noisy]
        backend.flush()
        return [f.result() for f in futures], time.perf_counter() - start
    outputs, spent = [], 0.0
    float_input = noisy[0].dtype != np.uint8
    for frame in noisy:
        start = time.perf_counter()
        if float_input:
            out = backend.process_float(frame)  # type: ignore[attr-defined]
            # The noisy input is scored as it is, unclipped; a denoiser's output is an image.
            if isinstance(backend, IdentityDenoiser):
                out = out * 255
            else:
                out = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
        else:
            out = backend.process(frame)
        spent += time.perf_counter() - start
        outputs.append(out)
    return outputs, spent


def evaluate(
    datasets: list[Path],
    sigmas: list[float],
    specs: list[BackendSpec],
    noise: str = "awgn",
    protocol: str = "quantized",
    seed: int = 0,
    max_frames: int | None = None,
    log: Callable[[str], None] = lambda _: None,
    still: int = 1,
) -> dict:
    """Run every backend on every dataset and level; returns the JSON-ready report."""
    if protocol == "float" and noise != "awgn":
        raise UsageError("--protocol float applies to --noise awgn only")
    results = []
    for data in datasets:
        sequences = load_sequences(Path(data), max_frames, still)
        real = sequences[0].noisy is not None
        for sigma in [REAL] if real else sigmas:
            level = 0.0 if real else sigma
            noisy = [make_noisy(s, i, level, noise, seed) for i, s in enumerate(sequences)]
            for spec in specs:
                params = None
                if real and not spec.neural and spec.name in GRID_BACKENDS:
                    rows, frames_done, spent, params = _best_on_grid(spec, sequences, noisy)
                else:
                    rows, frames_done, spent = _run_spec(
                        spec, sequences, noisy, level, noise, protocol
                    )
                row = {
                    "dataset": Path(data).name + (f" (still ×{still})" if still > 1 else ""),
                    "backend": spec.label,
                    "sigma": sigma,
                    "noise": "real" if real else noise,
                    "protocol": protocol,
                    "input": "float" if protocol == "float" and takes_float(spec) else "8-bit",
                    "psnr": _mean(rows, "psnr"),
                    "ssim": _mean(rows, "ssim"),
                    "flicker": _mean(rows, "flicker"),
                    "fps": round(frames_done / max(spent, 1e-9), 2),
                    "frames": frames_done,
                    "per_sequence": rows,
                }
                if real:  # (the scores are rounded to 3 decimals: so is the comparison)
                    row["worse_than_noisy"] = sum(
                        r["psnr"] < round(psnr(n[0][0], seq.frames[0]), 3)
                        for r, n, seq in zip(rows, noisy, sequences, strict=True)
                    )
                if params is not None:
                    row["params"] = params
                results.append(row)
                log(
                    f"{row['dataset']} {_level(sigma)} {spec.label}: PSNR {row['psnr']:.2f} "
                    f"SSIM {row['ssim']:.4f} flicker {row['flicker']:+.2f} {row['fps']:.1f} fps"
                )
    return {"noise": noise, "protocol": protocol, "seed": seed, "results": results}


def takes_float(spec: BackendSpec) -> bool:
    """Whether the backend accepts unclipped float frames (``process_float``); two passes
    take the 8-bit frames."""
    from streamdenoise.backends import backend_class

    return not spec.two_pass and hasattr(backend_class(spec.name), "process_float")


def _run_spec(
    spec: BackendSpec,
    sequences: list[Sequence],
    noisy: list[tuple[list[np.ndarray], list[np.ndarray]]],
    sigma: float,
    noise: str,
    protocol: str,
) -> tuple[list[dict], int, float]:
    """Scores of one backend on every sequence: (rows, frames, seconds in process)."""
    rows, hint, backend = [], sigma, None
    frames_done, spent = 0, 0.0
    try:
        for seq, (u8, floats) in zip(sequences, noisy, strict=True):
            if noise == "realistic" or seq.noisy is not None:  # oracle σ for the classical hint
                hint = float(np.std(np.stack(u8).astype(np.float32) - np.stack(seq.frames)))
            if backend is None or (not spec.neural and hint != sigma):
                if backend is not None:
                    backend.close()
                backend = create(spec, hint)
            use_float = protocol == "float" and takes_float(spec)
            outs, secs = run_backend(backend, seq.frames, floats if use_float else u8)
            frames_done += len(outs)
            spent += secs
            rows.append(sequence_scores(seq, outs))
    finally:
        if backend is not None:
            backend.close()
    return rows, frames_done, spent


def _best_on_grid(
    spec: BackendSpec,
    sequences: list[Sequence],
    noisy: list[tuple[list[np.ndarray], list[np.ndarray]]],
) -> tuple[list[dict], int, float, dict]:
    """A classical filter at the one grid setting that scores best on these real pairs.

    The candidates are the tuning grid's settings at every tabulated noise level; picking the
    best on the data it is scored on makes this an upper bound of what the filter can do."""
    from streamdenoise.lab.tune_classical import candidates, forced_params

    best = None
    for params in candidates(spec.name):
        with forced_params(spec.name, params):
            rows, frames, spent = _run_spec(spec, sequences, noisy, 0.0, "real", "quantized")
        if best is None or _mean(rows, "psnr") > _mean(best[0], "psnr"):
            best = (rows, frames, spent, params)
    return best


def _sigma_key(sigma: float | str) -> tuple[int, float]:
    return (1, 0.0) if isinstance(sigma, str) else (0, float(sigma))


def _level(sigma: float | str) -> str:
    return sigma if isinstance(sigma, str) else f"σ={sigma:g}"


def sequence_scores(seq: Sequence, outs: list[np.ndarray]) -> dict:
    """One sequence's scores as `eval` reports them: PSNR and SSIM per frame, averaged, and
    the flicker of the whole output."""
    return {
        "name": seq.name,
        "frames": len(outs),
        "psnr": round(
            float(np.mean([psnr(o, c) for o, c in zip(outs, seq.frames, strict=True)])), 3
        ),
        "ssim": round(
            float(np.mean([ssim(o, c) for o, c in zip(outs, seq.frames, strict=True)])), 4
        ),
        "flicker": round(flicker(outs, seq.frames), 3),
    }


def _mean(rows: list[dict], key: str) -> float:
    return round(float(np.mean([r[key] for r in rows])), 4 if key == "ssim" else 3)


def _row_fps(cells: list[dict], elsewhere: list[str]) -> str:
    """A row's fps: the mean over its levels measured on the latest run's machine; a row
    merged whole from another CPU gives that machine's mean, marked with its footnote
    (added to ``elsewhere``). Speeds of two machines are never averaged together."""
    here = [r for r in cells if "fps_machine" not in r]
    if here:
        return f"{np.mean([r['fps'] for r in here]):.1f}"
    there = cells[0]["fps_machine"]
    if there not in elsewhere:
        elsewhere.append(there)
    timed = [r["fps"] for r in cells if r["fps_machine"] == there]
    return f"{np.mean(timed):.1f} ‡{elsewhere.index(there) + 1}"


def markdown(report: dict) -> str:
    """A table per dataset: rows backend, columns σ, cells PSNR / SSIM; flicker and fps."""
    lines = [
        f"Noise: {report['noise']}, protocol: {report['protocol']}, seed {report['seed']}. "
        "Cells: PSNR dB / SSIM (identity = the noisy input); flicker = output minus clean "
        "frame-to-frame activity (8-bit units, lower is steadier); fps = mean over the levels "
        "measured on the latest run's machine (‡: all measured on another one). ↓ = not "
        "above the noisy input at that level.",
        "",
    ]
    machine = report.get("machine")
    if machine:
        lines[0] += f" Machine of the latest run: {cpu_description(machine)}"
        load = machine.get("load_avg_1m")
        lines[0] += f", load average {load} at its start." if load is not None else "."
    if report.get("isa_cap"):
        lines[0] += (
            f" CPU kernels capped with ONEDNN_MAX_CPU_ISA={report['isa_cap']}: what a CPU with"
            " only that instruction set runs."
        )
    if report["protocol"] == "float":
        lines[0] += (
            " † = 8-bit-only filter: it got the clipped, rounded input (the quantized protocol's"
            " number), since it cannot take unclipped noise."
        )
    datasets = list(dict.fromkeys(r["dataset"] for r in report["results"]))
    elsewhere: list[str] = []  # machines named in footnotes, in order of first mention
    for data in datasets:
        rows = [r for r in report["results"] if r["dataset"] == data]
        sigmas = sorted(dict.fromkeys(r["sigma"] for r in rows), key=_sigma_key)
        first = ("identity", "temporal", "spatial")
        labels = sorted(
            dict.fromkeys(r["backend"] for r in rows),
            key=lambda b: (first.index(b) if b in first else len(first), b),
        )
        lines += [f"### {data}", ""]
        lines.append("| backend | " + " | ".join(_level(s) for s in sigmas) + " | flicker | fps |")
        lines.append("|---" * (len(sigmas) + 3) + "|")
        noisy = {r["sigma"]: r["psnr"] for r in rows if r["backend"] == "identity"}
        for label in labels:
            cells = {r["sigma"]: r for r in rows if r["backend"] == label}
            values = [
                f"{cells[s]['psnr']:.2f} / {cells[s]['ssim']:.3f}"
                + (" ↓" if label != "identity" and cells[s]["psnr"] <= noisy.get(s, -1) else "")
                if s in cells
                else "–"
                for s in sigmas
            ]
            mine = list(cells.values())
            if any(r.get("input") == "8-bit" for r in mine) and report["protocol"] == "float":
                label = f"{label} †"
            fl = np.mean([r["flicker"] for r in mine])
            fps = _row_fps(mine, elsewhere)
            lines.append(f"| {label} | " + " | ".join(values) + f" | {fl:+.2f} | {fps} |")
        lines.append("")
    lines += [f"‡{n} fps on another machine: {cpu}." for n, cpu in enumerate(elsewhere, 1)]
    return "\n".join(lines)
