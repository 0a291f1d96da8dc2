"""``streamdenoise run SOURCE -o OUT ...``: build a PipelineConfig from flags + YAML and run it."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from streamdenoise import interrupts
from streamdenoise import settings as table
from streamdenoise.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    table.add_arguments(parser, table.RUN)
    parser.add_argument(
        "--config", metavar="FILE.yaml", help="YAML file with any of these settings; flags win"
    )


def merged_settings(args: argparse.Namespace) -> dict[str, Any]:
    """YAML values overridden by the flags given, each parsed and validated; table defaults
    for the rest."""
    base = table.load_config_file(args.config, table.RUN) if args.config else {}
    given = {name: getattr(args, name, None) for name in table.RUN}
    return table.resolve(table.RUN, given, base)


def check_paths(settings: dict) -> None:
    """Mistakes that would otherwise surface only after streaming: bad outputs, overwriting
    the input, a stats file in a missing folder."""
    from streamdenoise.sinks import check_overwrite, sink_kind

    source = Path(settings["source"]).expanduser()
    files: set[Path] = set()
    for output in settings.get("output") or []:
        if sink_kind(output) != "file":
            continue
        path = Path(output).expanduser()
        if source.is_file() and path.resolve() == source.resolve():
            raise UsageError(f"output {output} would overwrite the source")
        if path.resolve() in files:
            raise UsageError(f"output {output} is given twice")
        files.add(path.resolve())
        check_overwrite(path, settings["overwrite"])
    stats = settings.get("stats_json")
    if stats is not None and not stats.expanduser().parent.is_dir():
        raise UsageError(f"cannot write --stats-json {stats}: folder {stats.parent} does not exist")


def build_config(args: argparse.Namespace):
    from streamdenoise.options import stage_options
    from streamdenoise.pipeline import PipelineConfig

    settings = merged_settings(args)
    if settings["source"] is None:
        raise UsageError("no SOURCE given (try `streamdenoise run demo`)")
    check_paths(settings)
    source_options, sink_options = stage_options(settings)
    return PipelineConfig(
        source=settings["source"],
        outputs=settings["output"] or [table.default_output(settings["source"])],
        **table.pick(settings, *PIPELINE_FIELDS),
        source_options=source_options,
        sink_options=sink_options,
        status=not settings["quiet"],
        recalibrate=settings["recalibrate"],
    )


#: Settings that are PipelineConfig fields of the same name.
PIPELINE_FIELDS = (
    "backend", "model", "precision", "device", "threads", "strength", "policy", "queue_size",
    "max_frames", "duration", "stats_json", "engine_cache", "still_camera", "two_pass",
)  # fmt: skip


class _RedactingFormatter(logging.Formatter):
    """Last line of defence: no log line leaves the process with a URL password in it."""

    def format(self, record: logging.LogRecord) -> str:
        from streamdenoise.redact import redact

        return redact(super().format(record))


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time, so that the live status line (which
    redirects stderr) keeps log lines above itself instead of tearing through them."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging() -> None:
    handler = _CurrentStderr()
    handler.setFormatter(_RedactingFormatter("streamdenoise: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


def run(args: argparse.Namespace) -> int:
    setup_logging()
    from streamdenoise.pipeline import Pipeline
    from streamdenoise.redact import redact
    from streamdenoise.status import print_stats

    config = build_config(args)
    pipeline = Pipeline(config)

    def on_signal(signum, _frame):
        # At a terminal, say at once that the stop is under way; otherwise the one line at
        # the end says it (logs and services want one line per event).
        if not pipeline.stopping and sys.stderr.isatty():
            print("streamdenoise: stopping (finalizing outputs)...", file=sys.stderr)
        pipeline.stop(interrupted=True)

    with interrupts.handled_by({signal.SIGINT: on_signal, signal.SIGTERM: on_signal}):
        report = pipeline.run()
    if config.status:  # --quiet turns off both the status line and the table
        print_stats(report.stats)
    if report.error and not report.error_logged:
        print(f"streamdenoise: error: {redact(report.error)}", file=sys.stderr)
    elif report.interrupted:
        print("streamdenoise: interrupted; outputs finalized", file=sys.stderr)
    return report.exit_code
