"""``streamdenoise run SOURCE -o OUT ...``: build a PipelineConfig from flags + YAML and run it."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streamdenoise.errors import UsageError
from streamdenoise.models import DEFAULT_MODEL
from streamdenoise.options import X264_PRESETS, SinkOptions, SourceOptions
from streamdenoise.runtime import DEVICE_PATTERN, PRECISIONS, fastest_backend

POLICIES = ("latest", "lossless")
FALLBACK_BACKEND = "atadenoise"

_BITRATE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")
_SIZE = re.compile(r"^(\d+)[xX](\d+)$")


def parse_size(text: Any) -> tuple[int, int]:
    match = _SIZE.match(str(text).strip())
    if not match or int(match[1]) < 2 or int(match[2]) < 2:
        raise UsageError(f"bad size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
    return int(match[1]), int(match[2])


def parse_device(text: Any) -> str:
    device = str(text).strip().lower()
    if not DEVICE_PATTERN.match(device):
        raise UsageError(f"bad device {text!r}: expected auto, cpu, cuda or cuda:N")
    return device


def parse_bitrate(text: Any) -> int:
    match = _BITRATE.match(str(text).strip())
    if not match:
        raise UsageError(f"bad bitrate {text!r}: expected bits/s such as 4000000, 4000k or 4M")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match[2].lower()]
    value = int(float(match[1]) * scale)
    if value <= 0:
        raise UsageError(f"bad bitrate {text!r}: must be positive")
    return value


def _number(kind: type, minimum: float, inclusive: bool = True, maximum: float | None = None):
    def parse(text: Any, key: str = "value") -> float:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise UsageError(f"bad {key} {text!r}: expected a number") from None
        if value < minimum or (not inclusive and value == minimum):
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            raise UsageError(f"bad {key} {text!r}: must be {bound}")
        if maximum is not None and value > maximum:
            raise UsageError(f"bad {key} {text!r}: must be <= {maximum:g}")
        return value

    return parse


def _choice(options: tuple[str, ...]):
    def parse(text: Any, key: str = "value") -> str:
        if text not in options:
            raise UsageError(f"bad {key} {text!r}: choose from {', '.join(options)}")
        return text

    return parse


# setting -> parser of its raw value (flag string or YAML value); flags and YAML keys share
# these names. Parsers take (value, display name) and raise UsageError.
_PARSERS = {
    "source": lambda v, k: str(v),
    "output": lambda v, k: [str(x) for x in (v if isinstance(v, list) else [v])],
    "backend": lambda v, k: str(v),
    "model": lambda v, k: str(v),
    "precision": _choice(PRECISIONS),
    "device": lambda v, k: parse_device(v),
    "threads": _number(int, 1),
    "strength": _number(float, 0),
    "policy": _choice(POLICIES),
    "size": lambda v, k: parse_size(v),
    "fps": _number(float, 0, inclusive=False),
    "compare": lambda v, k: bool(v),
    "max_frames": _number(int, 1),
    "duration": _number(float, 0, inclusive=False),
    "stats_json": lambda v, k: Path(str(v)),
    "queue_size": _number(int, 1),
    "timeout": _number(float, 0, inclusive=False),
    "reconnect_max": _number(int, 0),
    "bitrate": lambda v, k: parse_bitrate(v),
    "gop": _number(int, 1),
    "preset": _choice(X264_PRESETS),
    "crf": _number(int, 0, maximum=51),
    "bind": lambda v, k: str(v),
    "quiet": lambda v, k: bool(v),
    "loop": lambda v, k: bool(v),
    "realtime": lambda v, k: bool(v),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every default is None so that a YAML value can fill in what the flags left out.
    add = parser.add_argument
    add(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="demo | camera index or /dev/videoN | rtsp:// http(s):// udp:// srt:// URL | "
        "video file | image folder (may come from --config)",
    )
    add(
        "-o",
        "--output",
        action="append",
        metavar="OUT",
        help="file.mp4|.mkv|.ts|.mov, display, null, rtsp:// rtmp:// udp:// srt:// (restream) "
        "or http://HOST:PORT (preview); repeat for several outputs "
        "[default: <source name>_denoised.mp4]",
    )
    add(
        "--backend",
        metavar="NAME",
        help="torch, hqdn3d, nlmeans, atadenoise, opencv-nlm, ... [default: torch with the "
        f"trained '{DEFAULT_MODEL}' model, else {FALLBACK_BACKEND}]",
    )
    add("--model", metavar="NAME", help="model name or weights file for neural backends")
    add("--precision", choices=PRECISIONS, help="inference precision [backend default]")
    add(
        "--device",
        metavar="DEV",
        help="auto, cpu, cuda or cuda:N for neural backends [auto: CUDA when torch sees a GPU]",
    )
    add(
        "--threads",
        metavar="N",
        help="CPU threads for the denoiser [the runtime's choice: every core]; give each of "
        "several streams on one machine its share",
    )
    add("--strength", metavar="S", help="denoising strength >= 0 [backend default]")
    add(
        "--policy",
        choices=POLICIES,
        help="source queue policy [latest for cameras/streams, lossless for files/demo]",
    )
    add("--size", metavar="WxH", help="capture size (cameras) or resize target")
    add("--fps", metavar="F", help="requested camera frame rate")
    add(
        "--compare",
        action="store_true",
        default=None,
        help="display/preview show noisy | denoised side by side",
    )
    add("--max-frames", metavar="N", help="stop after writing N frames")
    add("--duration", metavar="S", help="stop after S seconds")
    add("--stats-json", metavar="PATH", help="write the metrics report as JSON at the end")
    add("--config", metavar="FILE.yaml", help="YAML file with any of these settings; flags win")
    add("--queue-size", metavar="N", help="source queue length [2]")
    add("--timeout", metavar="S", help="seconds any source open/read may block [10]")
    add("--reconnect-max", metavar="N", help="reconnect attempts for live sources [unlimited]")
    add("--bitrate", metavar="B", help="encoder bitrate, e.g. 4M [files: CRF 20]")
    add("--gop", metavar="N", help="keyframe interval in frames [2 s]")
    add("--preset", metavar="NAME", help="libx264 preset for file outputs [veryfast]")
    add("--crf", metavar="Q", help="libx264 constant quality for file outputs, 0-51 [20]")
    add("--bind", metavar="ADDR", help="address the http:// preview binds to [127.0.0.1]")
    add("--loop", action="store_true", default=None, help="replay a file source forever")
    add(
        "--realtime",
        action="store_true",
        default=None,
        help="pace a file source at its frame rate, like a live camera",
    )
    add("-q", "--quiet", action="store_true", default=None, help="no status line, no stats table")


def load_config_file(path: str) -> dict:
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as err:
        raise UsageError(f"cannot read config {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"config {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config {path} must be a mapping of setting: value")
    settings = {str(k).replace("-", "_"): v for k, v in data.items()}
    if "outputs" in settings:
        settings["output"] = settings.pop("outputs")
    unknown = sorted(set(settings) - set(_PARSERS))
    if unknown:
        raise UsageError(
            f"config {path}: unknown setting(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_PARSERS))})"
        )
    return settings


def merged_settings(args: argparse.Namespace) -> dict:
    """YAML values overridden by the flags given, each parsed and validated."""
    raw = load_config_file(args.config) if args.config else {}
    for key in _PARSERS:
        value = getattr(args, key, None)
        if value is not None:
            raw[key] = value
    return {
        key: _PARSERS[key](value, key.replace("_", "-"))
        for key, value in raw.items()
        if value is not None
    }


def default_output(source: str) -> str:
    """``<source name>_denoised.mp4`` in the current directory (never URL credentials)."""
    if source == "demo":
        return "demo_denoised.mp4"
    if "://" not in source:
        return f"{Path(source.rstrip('/')).stem or 'stream'}_denoised.mp4"
    url = urlsplit(source)
    try:
        port = str(url.port or "")
    except ValueError:
        port = ""
    parts = [url.hostname or "", port, *url.path.strip("/").split("/")]
    return f"{'_'.join(p for p in parts if p) or 'stream'}_denoised.mp4"


def choose_backend(settings: dict, quiet: bool = False) -> tuple[str, str | None]:
    """(backend, model): the trained model on the fastest runtime here when it can load, else
    the classical fallback."""
    from streamdenoise.backends import backend_class, unavailable_reason

    if "backend" in settings:
        backend_class(settings["backend"])  # UsageError for an unknown name
        return settings["backend"], settings.get("model")
    if "model" in settings:  # asked for a model: no silent fallback, torch says what is wrong
        return "torch", settings["model"]
    try:
        reason = unavailable_reason("torch") or _missing_weights(DEFAULT_MODEL)
    except Exception as err:  # a broken torch backend must not break the default run
        reason = f"{type(err).__name__}: {err}"
    if reason is None:
        return fastest_backend(settings.get("device"), settings.get("precision")), DEFAULT_MODEL
    if not quiet:
        print(
            f"streamdenoise: note: using {FALLBACK_BACKEND}; the trained model is not usable "
            f"({reason})",
            file=sys.stderr,
        )
    return FALLBACK_BACKEND, None


def _missing_weights(model: str) -> str | None:
    """Reason the weights for ``model`` are not installed, or None when the file exists.

    (A file that exists but is corrupt is not hidden behind a fallback: loading it gives a
    clear error.)"""
    from streamdenoise.models import weights_path

    path = weights_path(model)
    return None if path.is_file() else f"no trained '{model}' weights at {path}"


def check_paths(settings: dict) -> None:
    """Mistakes that would otherwise surface only after streaming: bad outputs, overwriting
    the input, a stats file in a missing folder."""
    from streamdenoise.sinks import sink_kind

    source = Path(settings["source"]).expanduser()
    for output in settings.get("output", []):
        is_file = sink_kind(output) == "file"
        if is_file and source.is_file() and Path(output).expanduser().resolve() == source.resolve():
            raise UsageError(f"output {output} would overwrite the source")
    stats = settings.get("stats_json")
    if stats is not None and not stats.expanduser().parent.is_dir():
        raise UsageError(f"cannot write --stats-json {stats}: folder {stats.parent} does not exist")


def build_config(args: argparse.Namespace):
    from streamdenoise.pipeline import PipelineConfig

    settings = merged_settings(args)
    if "source" not in settings:
        raise UsageError("no SOURCE given (try `streamdenoise run demo`)")
    check_paths(settings)
    backend, model = choose_backend(settings, quiet=settings.get("quiet", False))
    source_options = SourceOptions(
        size=settings.get("size"),
        fps=settings.get("fps"),
        loop=settings.get("loop", False),
        realtime=settings.get("realtime", False),
    )
    if "timeout" in settings:
        source_options.timeout_s = settings["timeout"]
    if "reconnect_max" in settings:
        source_options.reconnect_max = settings["reconnect_max"]
    sink_options = SinkOptions(
        bitrate=settings.get("bitrate"),
        gop=settings.get("gop"),
        compare=settings.get("compare", False),
    )
    for key in ("bind", "preset", "crf"):
        if key in settings:
            setattr(sink_options, key, settings[key])
    return PipelineConfig(
        source=settings["source"],
        outputs=settings.get("output") or [default_output(settings["source"])],
        backend=backend,
        model=model,
        precision=settings.get("precision"),
        device=settings.get("device"),
        threads=settings.get("threads"),
        strength=settings.get("strength"),
        policy=settings.get("policy"),
        queue_size=settings.get("queue_size", 2),
        max_frames=settings.get("max_frames"),
        duration=settings.get("duration"),
        stats_json=settings.get("stats_json"),
        source_options=source_options,
        sink_options=sink_options,
        compare=settings.get("compare", False),
        status=not settings.get("quiet", False),
    )


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
        if not pipeline.stopping:
            print("streamdenoise: stopping (finalizing outputs)...", file=sys.stderr)
        pipeline.stop(interrupted=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        report = pipeline.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if config.status:  # --quiet turns off both the status line and the table
        print_stats(report.stats)
    if report.error:
        print(f"streamdenoise: error: {redact(report.error)}", file=sys.stderr)
    elif report.interrupted:
        print("streamdenoise: interrupted; outputs finalized", file=sys.stderr)
    return report.exit_code
