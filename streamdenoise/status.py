"""What the user sees: a live one-line status while running and a stats table at the end."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streamdenoise.metrics import STAGE_HELP, STAGES
from streamdenoise.redact import redact
from streamdenoise.settings import X264_PRESETS

REFRESH_S = 0.5


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def status_text(snap: dict) -> str:
    """One short line from Pipeline.snapshot(): fps in/out, e2e p50/p99, drops, source."""
    parts = [
        f"fps {snap['fps_in']:.1f} in {snap['fps_out']:.1f} out",
        f"e2e p50 {_ms(snap['e2e_p50_ms'])} p99 {_ms(snap['e2e_p99_ms'])} ms",
        f"drops {snap['drops']}",
    ]
    if snap.get("model"):
        parts.append(f"model {snap['model']}")
    if "source_state" in snap:
        parts.append(f"source {snap['source_state']}")
        if snap.get("reconnects"):
            parts.append(f"reconnects {snap['reconnects']}")
    parts.append(f"{snap['frames_out']} frames")
    return redact(" | ".join(parts))


class StatusLine:
    """Refreshes a transient status line on stderr, only when stderr is a terminal."""

    def __init__(self, snapshot: Callable[[], dict]) -> None:
        self._snapshot = snapshot
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start refreshing; False (and nothing shown) when stderr is not a terminal."""
        if not sys.stderr.isatty():
            return False
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        console = Console(stderr=True)
        with Live(Text(""), console=console, transient=True, auto_refresh=False) as live:
            while not self._done.wait(REFRESH_S):
                live.update(Text(status_text(self._snapshot())), refresh=True)

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


def stats_table(stats: dict) -> Table:
    """The end-of-run summary: throughput, drops, then latency per stage."""
    backend = stats.get("backend", {})
    source = stats.get("source", {})
    model = f" {stats['model']}" if stats.get("model") else ""
    if backend.get("two_pass"):  # the denoise stage then includes waiting for later frames
        model += ", two passes"
    title = (
        f"{source.get('description', '?')} → {backend.get('backend', '?')}{model} "
        f"({backend.get('precision', '?')}, {backend.get('device', '?')})"
    )
    table = Table(title=redact(title), title_justify="left")
    table.add_column("stage")
    for column in ("p50 ms", "p95 ms", "p99 ms", "max ms", "what it measures"):
        table.add_column(column, justify="right" if "ms" in column else "left")
    for stage in STAGES:
        row = stats["latency_ms"][stage]
        table.add_row(
            stage, *(_ms(row[k]) for k in ("p50", "p95", "p99", "max")), STAGE_HELP[stage]
        )
    drops = stats["drops_detail"]
    table.caption = redact(
        f"frames in {stats['frames_in']}, out {stats['frames_out']} in {stats['duration_s']} s"
        f" · fps in {stats['fps_in']}, out {stats['fps_out']}"
        f" · drops {stats['drops']} (source queue {drops['source_queue']})"
        f" · source {source.get('state', '?')}, reconnects {source.get('reconnects', 0)}"
    )
    table.caption_justify = "left"
    return table


def sinks_table(stats: dict) -> Table:
    table = Table(title="outputs", title_justify="left")
    for column in ("output", "frames", "drops", "e2e p50 ms", "e2e p99 ms", "error"):
        table.add_column(column)
    for name, sink in stats["sinks"].items():
        e2e = sink["latency_ms"]["e2e"]
        table.add_row(
            redact(name),
            str(sink["frames_written"]),
            str(sink["drops"]),
            _ms(e2e["p50"]),
            _ms(e2e["p99"]),
            redact(sink["error"] or ""),
        )
    return table


def tiers_table(stats: dict) -> Table:
    """``--model auto``: which tier ran when, and why it changed."""
    auto = stats["auto"]
    table = Table(title="model auto: tiers that ran", title_justify="left")
    for column in ("model", "precision", "from s", "to s", "frames", "then"):
        table.add_column(
            column, justify="right" if column in ("from s", "to s", "frames") else "left"
        )
    spans, switches = auto["spans"], auto["switches"]
    for index, span in enumerate(spans):
        then = switches[index]["reason"] if index < len(switches) else ""
        table.add_row(
            span["model"],
            span["precision"],
            f"{span['from_s']:.1f}",
            f"{span.get('to_s', 0):.1f}",
            str(span["frames"]),
            then,
        )
    rungs = " < ".join(f"{r['name']}/{r['precision']}" for r in auto["rungs"])
    calibration = auto.get("calibration") or {}
    note = calibration.get("skipped") or (
        f"frame interval {calibration.get('frame_interval_ms')} ms, first choice within "
        f"{calibration.get('choice_limit_ms')} ms; calibrated now: "
        f"{', '.join(calibration.get('measured_now') or []) or 'none (cached)'}"
    )
    before = calibration.get("busy_ms_seen_before")
    if before:
        seen = ", ".join(f"{label} {ms:.0f} ms" for label, ms in before.items())
        note += f"; judged by the busy time per frame of an earlier run: {seen}"
    table.caption = f"ladder: {rungs} · {note}"
    table.caption_justify = "left"
    return table


def print_stats(stats: dict, console: Console | None = None) -> None:
    console = console or Console()
    console.print(stats_table(stats))
    console.print(sinks_table(stats))
    if stats.get("auto"):
        console.print(tiers_table(stats))
    hint = encoder_hint(stats)
    if hint:
        console.print(hint, markup=False)


#: Drops and encoder share above which the end of a run suggests a faster x264 preset.
HINT_DROP_SHARE = 0.02
HINT_ENCODER_SHARE = 0.35


def encoder_hint(stats: dict) -> str | None:
    """One line when frames were dropped while a file's x264 encoder took a large share of
    each frame interval: on a small CPU the recording competes with the denoiser, and
    ``--preset ultrafast`` costs about half of ``veryfast`` (docs/troubleshooting.md)."""
    frames_in, fps_in = stats.get("frames_in") or 0, stats.get("fps_in") or 0
    if not frames_in or not fps_in or stats.get("drops", 0) <= HINT_DROP_SHARE * frames_in:
        return None
    interval_ms = 1000 / fps_in
    for name, sink in (stats.get("sinks") or {}).items():
        preset = sink.get("x264_preset")
        write_ms = (sink.get("latency_ms", {}).get("sink_write") or {}).get("mean")
        if preset in (None, X264_PRESETS[0]) or write_ms is None:  # none, or the cheapest
            continue
        if write_ms >= HINT_ENCODER_SHARE * interval_ms:
            share = stats["drops"] / frames_in
            return redact(
                f"hint: {share:.0%} of the frames were dropped while {name} took "
                f"{write_ms:.0f} ms of each {interval_ms:.0f} ms frame to encode (x264 "
                f"{preset}); --preset ultrafast costs about half, for a larger file"
            )
    return None
