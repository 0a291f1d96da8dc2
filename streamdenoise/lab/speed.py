"""``streamdenoise bench``: fps and latency per backend × precision × size, in one run.

Model-only mode feeds pre-generated noisy demo frames straight to ``Denoiser.process`` (the
uint8 ↔ float conversion and padding the backend does are included; decode and encode are
not). Pipeline mode runs the real pipeline (file decode → denoise → x264 file or null sink)
through the Python API. Every case is warmed up first, then all cases are measured in
several rounds with a rotating order, so slow drift of a shared machine hits all alike.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamdenoise.errors import UsageError, UserError
from streamdenoise.metrics import percentile
from streamdenoise.models.nets import initial_state
from streamdenoise.runtime import RUNTIMES, bench_precisions
from streamdenoise.settings import SETTINGS, default

NEURAL_BACKENDS = tuple(RUNTIMES)
INPUT_FRAMES = 8  # distinct noisy frames cycled through in model-only mode
# Generated pipeline clip: 10 s at 30 fps, so that looping (a discontinuity that resets
# temporal state) is rare within one measured slice.
CLIP_FRAMES = 300


@dataclass(frozen=True)
class Case:
    backend: str
    precision: str
    width: int
    height: int

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision} {self.size}"

    def failure(self, err: Exception) -> dict:
        """The ``unavailable`` entry for a case that could not be set up or run."""
        return {
            "backend": self.backend,
            "precision": self.precision,
            "size": self.size,
            "reason": str(err),
        }


@dataclass
class BenchConfig:
    """What ``bench`` measures; defaults are the CLI's (:mod:`streamdenoise.settings`)."""

    backends: list[str] = field(default_factory=lambda: list(NEURAL_BACKENDS))
    sizes: list[tuple[int, int]] = field(default_factory=lambda: list(default("sizes")))
    precisions: list[str] | None = None
    batch: int = default("batch")
    #: CPU threads per neural backend (None: the runtime's choice).
    threads: int | None = None
    seconds: float = default("seconds")
    warmup_s: float = default("warmup")
    rounds: int = default("rounds")
    model: str | None = None
    pipeline: bool = False
    clip: str | None = None
    pipeline_output: str = default("pipeline_output")
    #: libx264 presets for ``--pipeline`` MP4 runs; each one is a case of its own.
    presets: list[str] = field(default_factory=lambda: list(default("presets")))


def parse_sizes(text: str) -> list[tuple[int, int]]:
    return SETTINGS["sizes"].parse(text, "sizes")


def parse_backends(text: str) -> list[str]:
    from streamdenoise.backends import BACKENDS

    names = list(BACKENDS) if text == "all" else [n.strip() for n in text.split(",") if n]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        known = ", ".join(sorted(BACKENDS))
        raise UsageError(f"unknown backend {unknown[0]!r} (choose from: {known}, or all)")
    return names


def precisions_for(backend: str, wanted: list[str] | None) -> list[str]:
    """The backend's own precisions on this machine, narrowed to ``wanted``."""
    return [p for p in bench_precisions(backend) if wanted is None or p in wanted]


def plan_cases(config: BenchConfig) -> tuple[list[Case], list[dict]]:
    """Cases to run, and one ``{backend, precision, reason}`` per combination that cannot."""
    from streamdenoise.backends import unavailable_reason

    cases, unavailable = [], []
    for backend in config.backends:
        reason = unavailable_reason(backend)
        precisions = precisions_for(backend, config.precisions)
        if reason:
            unavailable.append({"backend": backend, "precision": None, "reason": reason})
            continue
        if not precisions:
            own = ", ".join(precisions_for(backend, None))
            unavailable.append(
                {"backend": backend, "precision": None, "reason": f"runs only in {own}"}
            )
        cases += [Case(backend, p, w, h) for p in precisions for w, h in config.sizes]
    return cases, unavailable


# -- measurement ------------------------------------------------------------------------------
@dataclass
class Samples:
    latencies_s: list[float] = field(default_factory=list)
    frames: int = 0
    busy_s: float = 0.0
    #: CPU seconds of this process (all threads) spent in the measured calls: on a shared
    #: machine wall time includes waiting for the CPU, this does not.
    cpu_s: float = 0.0

    def summary(self) -> dict:
        ms = [s * 1000 for s in self.latencies_s]
        fps = self.frames / self.busy_s if self.busy_s else 0.0
        return {
            "fps": round(fps, 2),
            "latency_ms": {
                "p50": round(percentile(ms, 50), 2) if ms else None,
                "p99": round(percentile(ms, 99), 2) if ms else None,
                "mean": round(sum(ms) / len(ms), 2) if ms else None,
            },
            "frames": self.frames,
            "seconds": round(self.busy_s, 2),
            "cpu_ms_per_frame": round(self.cpu_s * 1000 / self.frames, 2) if self.frames else None,
        }


class ModelRunner:
    """One backend instance prepared for one size, fed from a fixed set of noisy frames.

    With ``batch`` 1 each step is one ``process()`` call (conversions, padding and σ
    estimation included). With ``batch`` N > 1 each step is one call of the network graph on
    N stacked, already converted frames (N independent streams): graph time only.
    """

    def __init__(self, case: Case, config: BenchConfig, frames: list[np.ndarray]) -> None:
        from streamdenoise.backends import create_backend

        kwargs = {"precision": case.precision}
        if case.backend in NEURAL_BACKENDS:
            kwargs |= {"model": config.model, "threads": config.threads}
        self.denoiser = create_backend(case.backend, **kwargs)
        self.frames = frames
        self.batch = config.batch
        self.next_index = 0
        self.samples = Samples()
        try:
            if self.batch == 1:
                self.denoiser.prepare(case.width, case.height)
            else:
                self.graph_call = self._prepare_batch(case)
        except BaseException:
            self.denoiser.close()
            raise

    def _prepare_batch(self, case: Case) -> Callable[[], object]:
        from streamdenoise.backends.neural import NeuralDenoiser

        if not isinstance(self.denoiser, NeuralDenoiser):
            raise UserError(f"backend {case.backend!r} has no batched processing")
        m = self.denoiser.multiple
        height, width = -(-case.height // m) * m, -(-case.width // m) * m
        prepare_batch = getattr(self.denoiser, "prepare_batch", None)  # fixed-shape engines
        if prepare_batch:
            prepare_batch(self.batch, width, height)
        images = [self.frames[i % len(self.frames)] for i in range(self.batch)]
        x = np.stack([np.resize(im, (height, width, 3)) for im in images]).astype(np.float32)
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2) / np.float32(255))
        sigma = np.full((self.batch, 3, 1, 1), 15 / 255, np.float32)
        prev = None
        if self.denoiser.temporal:
            prev = initial_state(x, self.denoiser.config.state_channels).copy()
        return self.denoiser.graph_call(x, sigma, prev)

    def step(self) -> float:
        """Process one frame (or one batch); returns the call's latency in seconds."""
        start = time.perf_counter()
        if self.batch == 1:
            self.denoiser.process(self.frames[self.next_index % len(self.frames)])
        else:
            self.graph_call()  # the graph alone, by design
        self.next_index += self.batch
        return time.perf_counter() - start

    def run_for(self, seconds: float, record: bool) -> None:
        end = time.perf_counter() + seconds
        calls = 0
        while calls < 2 or time.perf_counter() < end:
            cpu_start = time.process_time()
            latency = self.step()
            calls += 1
            if record:
                self.samples.cpu_s += time.process_time() - cpu_start
                self.samples.latencies_s.append(latency)
                self.samples.frames += self.batch
                self.samples.busy_s += latency

    def close(self) -> None:
        self.denoiser.close()


def bench_frames(width: int, height: int, count: int = INPUT_FRAMES) -> list[np.ndarray]:
    from streamdenoise.sources.demo import DemoClip

    clip = DemoClip(width, height)
    return [clip.noisy(i) for i in range(count)]


def rotated(items: list, offset: int) -> list:
    offset %= max(len(items), 1)
    return items[offset:] + items[:offset]


def run_model_bench(
    config: BenchConfig, cases: list[Case], log=print
) -> tuple[list[dict], list[dict]]:
    """Warm up every case, then measure them interleaved; returns (results, failures)."""
    frames = {size: bench_frames(*size) for size in {(c.width, c.height) for c in cases}}
    runners: dict[Case, ModelRunner] = {}
    failures = []
    for case in cases:
        try:
            runner = ModelRunner(case, config, frames[(case.width, case.height)])
            runner.run_for(config.warmup_s, record=False)
        except UserError as err:
            failures.append(case.failure(err))
            continue
        runners[case] = runner
        log(f"warmed up {case.label}")
    slice_s = config.seconds / config.rounds
    try:
        for round_index in range(config.rounds):
            for case in rotated(list(runners), round_index):
                runners[case].run_for(slice_s, record=True)
            log(f"round {round_index + 1}/{config.rounds} done")
    finally:
        for runner in runners.values():
            runner.close()
    results = [
        {
            **_case_fields(case, config),
            "device": runner.denoiser.device,
            "mode": "model",
            **runner.samples.summary(),
        }
        for case, runner in runners.items()
    ]
    return results, failures


def _case_fields(case: Case, config: BenchConfig) -> dict:
    return {
        "backend": case.backend,
        "precision": case.precision,
        "size": case.size,
        "width": case.width,
        "height": case.height,
        "batch": config.batch,
    }


# -- pipeline mode ----------------------------------------------------------------------------
def make_clip(path: Path, width: int, height: int, frames: int, fps: int = 30) -> Path:
    """An H.264 clip of the noisy demo scene, so the pipeline run really decodes."""
    import av

    from streamdenoise.sources.demo import DemoClip

    clip = DemoClip(width, height, fps=fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "16"}
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(clip.noisy(index), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def run_pipeline_once(
    case: Case, preset: str | None, config: BenchConfig, clip: Path, out_dir: Path, seconds: float
):
    from streamdenoise.options import SinkOptions, SourceOptions
    from streamdenoise.pipeline import Pipeline, PipelineConfig

    output = "null" if preset is None else str(out_dir / "bench_out.mp4")
    pipeline_config = PipelineConfig(
        source=str(clip),
        outputs=[output],
        backend=case.backend,
        model=config.model if case.backend in NEURAL_BACKENDS else None,
        precision=case.precision,
        threads=config.threads if case.backend in NEURAL_BACKENDS else None,
        policy="lossless",
        duration=seconds,
        source_options=SourceOptions(size=(case.width, case.height), loop=True),
        # a scratch file, rewritten on every pass
        sink_options=SinkOptions(preset=preset or SinkOptions.preset, overwrite=True),
        status=False,
    )
    cpu_start = _cpu_seconds()
    report = Pipeline(pipeline_config).run()
    if report.error:
        raise UserError(report.error)
    return report.stats | {"cpu_s": _cpu_seconds() - cpu_start}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (e.g. the hqdn3d ffmpeg)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_pipeline_bench(
    config: BenchConfig, cases: list[Case], log=print
) -> tuple[list[dict], list[dict]]:
    """Each case (× x264 preset) runs the full pipeline ``rounds`` times for ``seconds / rounds``,
    interleaved."""
    presets = config.presets if config.pipeline_output == "mp4" else [None]
    pooled: dict[tuple[Case, str | None], list[dict]] = {
        (case, preset): [] for case in cases for preset in presets
    }
    failures: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="streamdenoise-bench-") as tmp:
        tmp_dir = Path(tmp)
        clips = {}
        for width, height in {(c.width, c.height) for c in cases}:
            given = Path(config.clip) if config.clip else None
            clips[(width, height)] = given or make_clip(
                tmp_dir / f"clip_{width}x{height}.mp4", width, height, frames=CLIP_FRAMES
            )
        slice_s = config.seconds / config.rounds
        for round_index in range(config.rounds):
            for case, preset in rotated(list(pooled), round_index):
                try:
                    stats = run_pipeline_once(
                        case, preset, config, clips[(case.width, case.height)], tmp_dir, slice_s
                    )
                except UserError as err:
                    failures.append(case.failure(err))
                    pooled.pop((case, preset))
                    continue
                pooled[(case, preset)].append(stats)
            log(f"pipeline round {round_index + 1}/{config.rounds} done")
    results = []
    for (case, preset), runs in pooled.items():
        frames = sum(r["frames_out"] for r in runs)
        duration = sum(r["duration_s"] for r in runs)
        e2e = [r["latency_ms"]["e2e"] for r in runs]
        results.append(
            {
                **_case_fields(case, config),
                "device": (runs[0].get("backend") or {}).get("device") if runs else None,
                "mode": "pipeline",
                "output": config.pipeline_output,
                "x264_preset": preset,
                "fps": round(frames / duration, 2) if duration else 0.0,
                # Pooled over rounds: the median of round medians, the worst round's p99.
                "latency_ms": {
                    "p50": _median([s["p50"] for s in e2e if s.get("p50") is not None]),
                    "p99": max((s["p99"] for s in e2e if s.get("p99") is not None), default=None),
                },
                "denoise_ms_p50": _median(
                    [
                        r["latency_ms"]["denoise"]["p50"]
                        for r in runs
                        if r["latency_ms"]["denoise"].get("p50") is not None
                    ]
                ),
                "frames": frames,
                "seconds": round(duration, 2),
                "cpu_ms_per_frame": (
                    round(sum(r["cpu_s"] for r in runs) * 1000 / frames, 2) if frames else None
                ),
            }
        )
    return results, failures


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 2) if values else None


# -- annotations and report -------------------------------------------------------------------
def add_macs_and_ratios(results: list[dict], model: str | None) -> dict[str, int | None]:
    """MACs per frame for the neural backends, and each row's fps relative to torch fp32."""
    macs: dict[str, int | None] = {}
    for row in results:
        neural = row["backend"] in NEURAL_BACKENDS
        if neural and row["size"] not in macs:
            macs[row["size"]] = _model_macs(model, row["width"], row["height"])
        row["macs_per_frame"] = macs[row["size"]] if neural else None
    reference = {
        (r["mode"], r["size"]): r["fps"]
        for r in results
        if r["backend"] == "torch" and r["precision"] == "fp32"
    }
    for row in results:
        ref = reference.get((row["mode"], row["size"]))
        row["vs_torch_fp32"] = round(row["fps"] / ref, 2) if ref else None
    return macs


def _model_macs(model: str | None, width: int, height: int) -> int | None:
    from streamdenoise.models.macs import count_net_macs
    from streamdenoise.models.onnx import load_net

    try:
        net = load_net(model or default_model())
    except UserError:
        return None
    return count_net_macs(net, width, height)


def default_model() -> str:
    from streamdenoise.models import DEFAULT_MODEL

    return DEFAULT_MODEL


def write_report(stem: Path, doc: dict, markdown: str) -> None:
    """A benchmark's results as ``stem.json`` and ``stem.md`` (folders made as needed), the
    markdown echoed to the terminal."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)


def machine_record() -> dict:
    """What the numbers depend on: CPU, GPUs, library versions, commit, load."""
    from streamdenoise import hardware
    from streamdenoise.commands.devices import versions
    from streamdenoise.models.weights import git_commit

    cpu = hardware.cpu()
    return {
        "cpu": {"model": cpu.model, "cores": cpu.logical_cores, "flags": cpu.notable_flags},
        "physical_cores": cpu.physical_cores,
        "gpus": [device.name for device in hardware.cuda_devices()],
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "versions": versions(),
        "git_commit": git_commit(),
        "git_dirty": _git_dirty(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def cpu_description(machine: dict) -> str:
    """``model, N logical cores (flags)`` of a :func:`machine_record`, for report headers."""
    cpu = machine["cpu"]
    return f"{cpu['model']}, {cpu['cores']} logical cores ({', '.join(cpu['flags'])})"


def _git_dirty() -> bool | None:
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def run_bench(config: BenchConfig, log=print) -> dict:
    """Measure everything ``config`` asks for; returns the JSON document."""
    cases, unavailable = plan_cases(config)
    started = time.time()
    results, failures = run_model_bench(config, cases, log) if cases else ([], [])
    if config.pipeline and cases:
        measured = {(r["backend"], r["precision"], r["size"]) for r in results}
        usable = [c for c in cases if (c.backend, c.precision, c.size) in measured]
        pipe_results, pipe_failures = run_pipeline_bench(config, usable, log)
        results += pipe_results
        failures += pipe_failures
    macs = add_macs_and_ratios(results, config.model)
    return {
        "argv": sys.argv[1:],
        "model": config.model or (default_model() if macs else None),
        "settings": {
            "seconds": config.seconds,
            "warmup_s": config.warmup_s,
            "rounds": config.rounds,
            "batch": config.batch,
            "threads": config.threads,
            "pipeline_output": config.pipeline_output if config.pipeline else None,
            "x264_presets": config.presets if config.pipeline else None,
        },
        "macs_per_frame": macs,
        "machine": machine_record(),
        "started_unix": round(started),
        "wall_s": round(time.time() - started, 1),
        "results": results,
        "unavailable": unavailable + failures,
    }


def to_markdown(doc: dict) -> str:
    machine = doc["machine"]
    cpu = machine["cpu"]
    gpus = ", ".join(machine["gpus"]) or "none"
    lines = [
        f"# streamdenoise bench — model `{doc['model'] or 'none'}`",
        "",
        f"Machine: {cpu['model']}, {cpu['cores']} logical cores "
        f"({machine['physical_cores']} physical), flags {', '.join(cpu['flags']) or '-'}; "
        f"GPU: {gpus}; commit {machine['git_commit'][:10]}; load {machine['load_avg_1m']}.",
        f"Settings: {doc['settings']['seconds']} s per case in {doc['settings']['rounds']} "
        f"interleaved rounds after {doc['settings']['warmup_s']} s warm-up, batch "
        f"{doc['settings']['batch']}.",
        "",
    ]
    for mode, title in (
        ("model", "Model only"),
        ("pipeline", "End to end (decode → denoise → encode)"),
    ):
        rows = [r for r in doc["results"] if r["mode"] == mode]
        if not rows:
            continue
        encoder = mode == "pipeline"
        lines += [
            f"## {title}",
            "",
            "| backend | precision | size |"
            + (" x264 preset |" if encoder else "")
            + " fps | p50 ms | p99 ms | CPU ms/frame | × torch fp32 | GMAC/frame |",
            "|---|---|---|" + ("---|" if encoder else "") + "---:|---:|---:|---:|---:|---:|",
        ]
        for r in sorted(rows, key=lambda r: (r["width"] * r["height"], -r["fps"])):
            macs = r.get("macs_per_frame")
            preset = f" {r.get('x264_preset') or 'no encode'} |" if encoder else ""
            lines.append(
                f"| {_backend_label(r)} | {r['precision']} | {r['size']} |{preset} {r['fps']:.1f} "
                f"| {_fmt(r['latency_ms']['p50'])} | {_fmt(r['latency_ms']['p99'])} "
                f"| {_fmt(r.get('cpu_ms_per_frame'))} | {_fmt(r.get('vs_torch_fp32'))} "
                f"| {_fmt(macs / 1e9 if macs else None)} |"
            )
        lines.append("")
    if doc["unavailable"]:
        lines += ["## Not measured", ""]
        for item in doc["unavailable"]:
            what = " ".join(str(item[k]) for k in ("backend", "precision", "size") if item.get(k))
            lines.append(f"- {what}: {item['reason']}")
        lines.append("")
    return "\n".join(lines)


def _backend_label(row: dict) -> str:
    device = row.get("device") or "cpu"
    return row["backend"] if device == "cpu" else f"{row['backend']} ({device})"


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2f}"
