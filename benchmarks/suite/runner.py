"""One measured pipeline run of one contender, through the project's Python API.

CPU utilisation is the process's CPU time (threads, plus reaped child processes such as the
hqdn3d ``ffmpeg`` filter) divided by wall time: 100 % = one core busy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil

from streamdenoise.options import SinkOptions, SourceOptions
from streamdenoise.pipeline import Pipeline, PipelineConfig
from suite.contenders import Contender


@dataclass
class RunResult:
    report: dict
    wall_s: float
    cpu_s: float
    #: Stage name (metrics.STAGES) -> every latency sample of the run, in ms.
    samples_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


def _cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def run_pipeline(
    contender: Contender,
    source: str,
    outputs: list[str],
    *,
    policy: str,
    source_options: SourceOptions,
    sink_options: SinkOptions | None = None,
    max_frames: int | None = None,
    seconds: float | None = None,
) -> RunResult:
    """Run ``source`` → contender → ``outputs`` to the end (or ``max_frames``/``seconds``)."""
    config = PipelineConfig(
        source=source,
        outputs=outputs,
        backend=contender.backend,
        model=contender.model,
        policy=policy,
        source_options=source_options,
        sink_options=sink_options or SinkOptions(),
        max_frames=max_frames,
        duration=seconds,
        status=False,
    )
    pipeline = Pipeline(config)
    proc = psutil.Process()
    cpu0, t0 = _cpu_seconds(proc), time.monotonic()
    outcome = pipeline.run()
    wall, cpu = time.monotonic() - t0, _cpu_seconds(proc) - cpu0
    if outcome.error:
        raise RuntimeError(f"{contender.label}: pipeline failed: {outcome.error}")
    report = outcome.stats
    samples = {
        stage: (series.recent() * 1000.0).tolist()
        for stage, series in pipeline.metrics.latency.items()
    }
    return RunResult(report=report, wall_s=wall, cpu_s=cpu, samples_ms=samples)
