"""Every user-facing setting in one table: name, parser, default, help, CLI flag and YAML key.

The commands build their argparse parsers from :data:`SETTINGS` (:func:`add_arguments`), the
YAML loader accepts its names as keys (:func:`load_config_file`), and the Python API's
dataclasses take their defaults from it (:func:`default`), so a default is written once and
the CLI, a config file and ``streamdenoise.PipelineConfig()`` agree. Adding an option is one
:class:`Setting` line plus its name in the command's tuple (e.g. :data:`RUN`).

Parsers take the raw value (a flag's string or a YAML value) and the setting's display name,
and raise :class:`~streamdenoise.errors.UsageError` with one line saying what is wrong.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from streamdenoise.backends import BACKENDS
from streamdenoise.errors import UsageError
from streamdenoise.models import DEFAULT_MODEL, MODEL_NAMES, TRAINABLE_MODELS
from streamdenoise.runtime import DEVICE_PATTERN, PRECISIONS, RUNTIMES

Parser = Callable[[Any, str], Any]

# libx264 speed/quality presets, fastest first: real-time file outputs on small CPUs want the
# faster end (the encoder shares the cores with the denoiser).
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
)  # fmt: skip
#: ``--preset auto`` (the default): files, pinned models and GPU runs encode at the first of
#: these; a live run under ``--model auto`` on a CPU steps down them, before the first frame,
#: until a model tier keeps the source's rate beside the encoder (the last costs about half
#: the CPU of the first, for files about 2.7x larger at the same CRF: docs/auto.md).
AUTO_PRESET = "auto"
AUTO_PRESET_STEPS = ("veryfast", "superfast", "ultrafast")
POLICIES = ("latest", "lossless")
#: Clips per training step when ``--batch`` is not given (the spatial model's clips are 1 frame).
TRAIN_BATCH = {"spatial": 16}
TRAIN_BATCH_OTHERS = 6


def resolve_preset(preset: str, chosen: str | None = None) -> str:
    """The libx264 preset an output set to ``preset`` encodes with: itself, or for ``auto``
    what ``--model auto`` ``chosen`` for this run, else the first step."""
    if preset != AUTO_PRESET:
        return preset
    return chosen or AUTO_PRESET_STEPS[0]


def train_batch(model: str) -> int:
    """Clips per training step when none is given."""
    return TRAIN_BATCH.get(model, TRAIN_BATCH_OTHERS)


def data_dir() -> Path:
    """The datasets folder of the lab commands: ``$STREAMDENOISE_DATA``, else
    ``../shared/datasets`` (next to a checkout)."""
    return Path(os.environ.get("STREAMDENOISE_DATA") or "../shared/datasets")


#: Characters of a default output name taken from the source (file systems allow 255 bytes).
MAX_NAME = 120


def default_output(source: str) -> str:
    """``<source name>_denoised.mp4`` in the current directory (never URL credentials)."""
    if source == "demo":
        return "demo_denoised.mp4"
    if "://" not in source:
        return f"{Path(source.rstrip('/')).stem[:MAX_NAME] or 'stream'}_denoised.mp4"
    try:
        url = urlsplit(source)
        port = str(url.port or "")
    except ValueError:
        return "stream_denoised.mp4"
    path = url.path.strip("/").split("/")
    if url.scheme.lower().startswith("rtmp"):
        path = path[:1]  # rtmp://host/app/KEY: the stream key is a secret
    parts = [url.hostname or "", port, *path]
    return f"{'_'.join(p for p in parts if p)[:MAX_NAME] or 'stream'}_denoised.mp4"


# -- parsers ----------------------------------------------------------------------------------
_BITRATE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")
_SIZE = re.compile(r"^(\d+)[xX](\d+)$")


#: Largest frame side accepted: 8K video fits; a typo such as 99999999x2 would exhaust the
#: memory.
MAX_SIDE = 8192


def parse_size(text: Any, key: str = "size") -> tuple[int, int]:
    match = _SIZE.match(str(text).strip())
    if not match or int(match[1]) < 2 or int(match[2]) < 2:
        raise UsageError(f"bad {key} {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
    if max(int(match[1]), int(match[2])) > MAX_SIDE:
        raise UsageError(f"bad {key} {text!r}: at most {MAX_SIDE} pixels a side")
    return int(match[1]), int(match[2])


def parse_device(text: Any, key: str = "device") -> str:
    device = str(text).strip().lower()
    if not DEVICE_PATTERN.match(device):
        raise UsageError(f"bad {key} {text!r}: expected auto, cpu, cuda or cuda:N")
    return device


def parse_bitrate(text: Any, key: str = "bitrate") -> int:
    match = _BITRATE.match(str(text).strip())
    if not match:
        raise UsageError(f"bad {key} {text!r}: expected bits/s such as 4000000, 4000k or 4M")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match[2].lower()]
    value = int(float(match[1]) * scale)
    if value <= 0:
        raise UsageError(f"bad {key} {text!r}: must be positive")
    return value


def parse_backend(value: Any, key: str = "backend") -> str:
    name = str(value)
    if name != "auto" and name not in BACKENDS:  # read now: plugins may register more
        raise UsageError(f"unknown backend {name!r} (choose from: auto, {', '.join(BACKENDS)})")
    return name


def number(kind: type, minimum: float, inclusive: bool = True, maximum: float | None = None):
    def parse(text: Any, key: str = "value") -> float:
        try:
            value = kind(text)
        except (TypeError, ValueError, OverflowError):
            raise UsageError(f"bad {key} {text!r}: expected a number") from None
        if not math.isfinite(value):
            raise UsageError(f"bad {key} {text!r}: expected a finite number")
        if value < minimum or (not inclusive and value == minimum):
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            raise UsageError(f"bad {key} {text!r}: must be {bound}")
        if maximum is not None and value > maximum:
            raise UsageError(f"bad {key} {text!r}: must be <= {maximum:g}")
        return value

    return parse


def choice(options: Iterable[str]) -> Parser:
    options = tuple(options)

    def parse(text: Any, key: str = "value") -> str:
        if text not in options:
            raise UsageError(f"bad {key} {text!r}: choose from {', '.join(options)}")
        return text

    parse.choices = options  # type: ignore[attr-defined]  # shown in --help
    return parse


def comma_list(item: Parser) -> Parser:
    """``a,b,c`` (or a YAML list) parsed item by item; empty is an error."""

    def parse(value: Any, key: str = "value") -> list:
        items = value if isinstance(value, list) else str(value).split(",")
        parsed = [item(str(x).strip(), key) for x in items if str(x).strip()]
        if not parsed:
            raise UsageError(f"bad {key} {value!r}: empty list")
        return parsed

    return parse


def text(value: Any, key: str = "value") -> str:
    return str(value)


def path(value: Any, key: str = "value") -> Path:
    return Path(str(value)).expanduser()


def existing_file(value: Any, key: str = "value") -> Path:
    found = path(value)
    if not found.is_file():
        raise UsageError(f"--{key} {value}: no such file")
    return found


def switch(value: Any, key: str = "value") -> bool:
    if isinstance(value, bool):
        return value
    raise UsageError(f"bad {key} {value!r}: expected true or false")


def strings(value: Any, key: str = "value") -> list[str]:
    items = value if isinstance(value, list) else [value]
    if any(x is None for x in items):  # YAML reads a bare null (or an empty item) as nothing
        raise UsageError(f"bad {key}: an empty entry (YAML reads a bare null as none: quote it)")
    return [str(x) for x in items]


def paths(value: Any, key: str = "value") -> list[Path]:
    return [path(x) for x in (value if isinstance(value, list) else [value])]


# -- the table --------------------------------------------------------------------------------
Kind = Literal["value", "switch", "append", "positional"]


@dataclass(frozen=True)
class Setting:
    #: Python and YAML name (``queue_size``); the flag is ``--queue-size`` unless ``flag`` says.
    name: str
    parse: Parser
    help: str
    #: Value used when neither a flag nor the YAML file sets it (None: see ``default_help``).
    default: Any = None
    #: How the default is decided when it is not one value ("latest for cameras, ...").
    default_help: str | None = None
    kind: Kind = "value"
    metavar: str | None = None
    flag: str | None = None
    short: str | None = None

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def display(self) -> str:
        """Name used in error messages (the flag without dashes)."""
        return self.option.lstrip("-")

    def shown_default(self) -> str | None:
        if self.default_help:
            return self.default_help
        if self.default is None or self.kind == "switch":
            return None
        value = self.default
        if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
            return f"{value[0]}x{value[1]}"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)


_SETTINGS: tuple[Setting, ...] = (
    # -- run (and the Python API) ------------------------------------------------------------
    Setting("source", text, "demo | camera index or /dev/videoN | rtsp:// http(s):// udp:// "
            "srt:// URL | video file | image folder (may come from --config)",
            kind="positional", metavar="SOURCE"),
    Setting("output", strings, "file.mp4|.mkv|.ts|.mov, display, null, rtsp:// rtmp:// udp:// "
            "srt:// (restream) or http://HOST:PORT (preview); repeat for several outputs",
            default_help="<source name>_denoised.mp4", kind="append", metavar="OUT", short="-o"),
    Setting("backend", parse_backend, f"denoiser: auto, {', '.join(BACKENDS)}", default="auto",
            default_help="auto: the trained model on the fastest runtime here, else atadenoise",
            metavar="NAME"),
    Setting("model", text, "model name (wide-temporal, wide, nano, fixed or any other tier "
            "that ships) or weights file for neural backends; `run` also takes auto: the "
            "strongest tier that keeps up with the source, adapting while it runs (files kept "
            "whole: the strongest)",
            default_help="run: auto; bench: wide-temporal", metavar="NAME"),
    Setting("recalibrate", switch, "with --model auto: measure the tiers on this machine again "
            "instead of using the cached figures", default=False, kind="switch"),
    Setting("still_camera", switch, "the camera never moves (a fixed mount): --model auto "
            "adds `fixed`, the model for still scenes, below the top tier",
            default=False, kind="switch"),
    Setting("two_pass", switch, "run the recurrent model backward too, over the frames "
            "after each one, and average the two estimates: about +0.4 dB, 2.25x the work, "
            "each frame leaves 10 frames late (for files; nothing adapts)",
            default=False, kind="switch"),
    Setting("precision", choice(PRECISIONS), "inference precision",
            default_help="fp16 on CUDA, bf16 on CPUs with native bf16, else fp32", metavar="P"),
    Setting("device", parse_device, "auto, cpu, cuda or cuda:N for neural backends (and training)",
            default="auto", default_help="auto: CUDA when a GPU is usable", metavar="DEV"),
    Setting("threads", number(int, 1), "CPU threads for the denoiser; give each of several "
            "streams on one machine its share", default_help="the runtime's choice: every core",
            metavar="N"),
    Setting("strength", number(float, 0), "denoising strength >= 0 (1 = the estimated noise "
            "level)", default_help="1 (classical filters: their tuned setting)", metavar="S"),
    Setting("policy", choice(POLICIES), "source queue policy: latest drops the oldest frame, "
            "lossless waits", default_help="latest for cameras/streams, lossless for files/demo",
            metavar="P"),
    Setting("size", parse_size, "capture size (cameras) or resize target", metavar="WxH"),
    Setting("fps", number(float, 0, inclusive=False), "requested camera frame rate",
            metavar="F"),
    Setting("compare", switch, "display/preview show noisy | denoised side by side",
            default=False, kind="switch"),
    Setting("max_frames", number(int, 1), "stop after writing N frames", metavar="N"),
    Setting("duration", number(float, 0, inclusive=False), "stop after S seconds", metavar="S"),
    Setting("stats_json", path, "write the metrics report as JSON at the end", metavar="PATH"),
    Setting("queue_size", number(int, 1), "source queue length", default=2, metavar="N"),
    Setting("timeout", number(float, 0, inclusive=False), "seconds any source open/read may "
            "block", default=10.0, metavar="S"),
    Setting("reconnect_max", number(int, 0), "reconnect attempts for live sources",
            default_help="unlimited", metavar="N"),
    Setting("bitrate", parse_bitrate, "encoder bitrate, e.g. 4M", default_help="files: CRF",
            metavar="B"),
    Setting("gop", number(int, 1), "keyframe interval in frames", default_help="2 s",
            metavar="N"),
    Setting("preset", choice((AUTO_PRESET, *X264_PRESETS)), "libx264 preset for file "
            "outputs; auto: veryfast, or superfast/ultrafast when --model auto needs the CPU "
            "to keep a live source's rate; restreams use ultrafast + zerolatency",
            default=AUTO_PRESET, metavar="NAME"),
    Setting("crf", number(int, 0, maximum=51), "libx264 constant quality for file outputs, "
            "0-51", default=20, metavar="Q"),
    Setting("bind", text, "address the http:// preview binds to; any non-loopback address "
            "needs --token", default="127.0.0.1", metavar="ADDR"),
    Setting("token", text, "secret (16+ characters) a preview client must send as "
            "?token=SECRET or 'Authorization: Bearer SECRET'",
            default_help="$STREAMDENOISE_TOKEN", metavar="SECRET"),
    Setting("overwrite", switch, "replace output files that already exist (else refuse, so "
            "that a restart never destroys the previous recording)", default=False,
            kind="switch", short="-y"),
    Setting("no_audio", switch, "drop the source's audio (else its first audio stream goes "
            "to file and restream outputs, copied or as AAC, in sync with the video)",
            default=False, kind="switch"),
    Setting("loop", switch, "replay a file source forever", default=False, kind="switch"),
    Setting("realtime", switch, "pace a file source at its frame rate, like a live camera",
            default=False, kind="switch"),
    Setting("engine_cache", path, "folder for built TensorRT plans",
            default_help="the user cache folder's tensorrt/", metavar="DIR"),
    Setting("quiet", switch, "no status line, no stats table", default=False, kind="switch",
            short="-q"),
    # -- bench ---------------------------------------------------------------------------------
    Setting("bench_backends", text, "comma-separated backends, or all registered ones",
            default=",".join(RUNTIMES), metavar="LIST|all", flag="--backends"),
    Setting("sizes", comma_list(parse_size), "frame sizes",
            default=[(640, 360), (1280, 720), (1920, 1080)], metavar="WxH,..."),
    Setting("precisions", comma_list(choice((*PRECISIONS, "uint8"))), "only these "
            "precisions, e.g. fp32,bf16", default_help="each backend's own set", metavar="LIST",
            flag="--precision"),
    Setting("batch", number(int, 1), "N > 1: N stacked streams per network-graph call (graph "
            "time only)", default=1, metavar="N"),
    Setting("seconds", number(float, 0, inclusive=False), "measured seconds per case, split "
            "over the rounds", default=5.0, metavar="S"),
    Setting("warmup", number(float, 0), "warm-up seconds per case", default=1.0, metavar="S"),
    Setting("rounds", number(int, 1), "interleaved rounds (order rotated each round)",
            default=3, metavar="N"),
    Setting("pipeline", switch, "also run the full pipeline (decode → denoise → encode) per "
            "case", default=False, kind="switch"),
    Setting("clip", existing_file, "input clip for --pipeline",
            default_help="a generated demo clip", metavar="PATH"),
    Setting("pipeline_output", choice(("mp4", "null")), "--pipeline sink: x264 MP4 file or "
            "null", default="mp4", metavar="OUT"),
    Setting("presets", comma_list(choice(X264_PRESETS)), "libx264 presets for --pipeline MP4 "
            "runs, each measured as its own case (e.g. ultrafast,veryfast)",
            default=["veryfast"], metavar="LIST", flag="--preset"),
    Setting("json", path, "write the results as JSON", metavar="OUT"),
    Setting("markdown", path, "write the results as a markdown table", metavar="OUT"),
    # -- eval ----------------------------------------------------------------------------------
    Setting("data", paths, "clean images folder, folder of frame folders, video file, or a "
            "folder of <name>_noisy/<name>_clean pairs scored as they are (repeatable)",
            default_help="$STREAMDENOISE_DATA or ../shared/datasets: "
            "val/videos (--tune-classical: train/videos)", kind="append", metavar="PATH"),
    Setting("sigma", text, "noise levels, 8-bit scale", default="10,20,30,40,50",
            metavar="LIST"),
    Setting("eval_backends", text, "comma list: a shipped model's name (torch), "
            f"BACKEND[:MODEL][@PRECISION] (MODEL: {DEFAULT_MODEL} if left out; +two-pass after "
            "a recurrent model: forward and backward, as run --two-pass), identity (= the "
            "noisy input), hqdn3d, nlmeans, atadenoise, bm3d, opencv-nlm, cbm3d, vbm3d",
            default=f"identity,{DEFAULT_MODEL},temporal,spatial,hqdn3d,nlmeans,atadenoise,bm3d,"
            "opencv-nlm",
            metavar="LIST", flag="--backends"),
    Setting("noise", choice(("awgn", "realistic")), "synthetic noise model", default="awgn",
            metavar="NAME"),
    Setting("protocol", choice(("quantized", "float")), "quantized: 8-bit noisy input, as a "
            "camera delivers it; float: unclipped float noise for the neural models",
            default="quantized", metavar="NAME"),
    Setting("seed", number(int, 0), "random seed", default=0, metavar="N"),
    Setting("sequence_frames", number(int, 1), "frames per sequence",
            default_help="all", metavar="N", flag="--max-frames"),
    Setting("still", number(int, 1), "hold each still image for N frames (a fixed camera; "
            "fresh noise every frame)", default=1, metavar="N"),
    Setting("merge", paths, "earlier JSON report(s) whose rows are kept unless this run "
            "recomputes them", kind="append", metavar="JSON"),
    Setting("tune_classical", switch, "grid-search classical settings on --data (training "
            "videos) and write the presets", default=False, kind="switch"),
    # -- train ---------------------------------------------------------------------------------
    Setting("data_root", path, "datasets folder", default_help="$STREAMDENOISE_DATA or "
            "../shared/datasets", metavar="DIR", flag="--data"),
    Setting("train_model", choice(TRAINABLE_MODELS), "model to train", default="temporal",
            metavar="NAME", flag="--model"),
    Setting("minutes", number(float, 0, inclusive=False), "wall-clock training budget",
            default=35.0, metavar="M"),
    Setting("resume", path, "continue from a checkpoint file", metavar="CKPT"),
    Setting("out", path, "weights file to write", default_help="MODEL.pt in this folder",
            metavar="FILE"),
    Setting("checkpoint_dir", path, "folder for checkpoints", default=Path("checkpoints"),
            metavar="DIR"),
    Setting("init", path, "start from a weights file (a spatial model can seed a temporal one)",
            metavar="WEIGHTS"),
    Setting("train_batch", number(int, 1), "clips per step",
            default_help=f"spatial {TRAIN_BATCH['spatial']}, else {TRAIN_BATCH_OTHERS}",
            metavar="N", flag="--batch"),
    Setting("frames", number(int, 1), "frames per clip (truncated BPTT)", default=5,
            metavar="N"),
    Setting("patch", number(int, 16), "training crop size, a multiple of 16", default=80,
            metavar="PX"),
    Setting("lr", number(float, 0, inclusive=False), "peak learning rate", default=1e-3,
            metavar="LR"),
    Setting("video_share", number(float, 0, maximum=1), "share of the training clips cut from "
            "real videos; the rest come from images", default=0.5, metavar="F"),
    Setting("fp32", switch, "disable bf16 autocast", default=False, kind="switch"),
    Setting("loss", choice(("charbonnier", "mse")), "charbonnier: robust, keeps edges; mse: "
            "what PSNR measures (for a last fine-tune)", default="charbonnier", metavar="NAME"),
    Setting("unclipped_noise", number(float, 0, maximum=1), "share of the AWGN training clips "
            "whose noise is left unclipped and unrounded (the float protocol of published "
            "benchmarks); the rest are 8-bit, as cameras deliver", default=0.0, metavar="F"),
    Setting("monochrome", number(float, 0, maximum=1), "share of the training clips made "
            "grey with the same noise in every channel, as an IR camera sends at night",
            default=0.0, metavar="F"),
    Setting("isp_noise", number(float, 0, maximum=1), "share of the colour training clips "
            "rendered by a simulated camera: sensor noise on a Bayer mosaic, demosaicked, "
            "sharpened and compressed, against the same rendering without noise",
            default=0.0, metavar="F"),
    # -- export --------------------------------------------------------------------------------
    Setting("export_model", text, "model to export", default_help="wide-temporal", metavar="NAME",
            flag="--model"),
    Setting("format", choice(("onnx", "onnx-int8", "tensorrt")), "onnx: the float graph; "
            "onnx-int8: its int8 QDQ version for `--backend openvino --precision int8` (needs "
            "--calibration); tensorrt: build the engine", default="onnx",
            metavar="FORMAT"),
    Setting("calibration", path, "onnx-int8: folder of clean images (searched recursively), "
            "e.g. the training data", metavar="DIR"),
    Setting("int8_output", switch, "onnx-int8: quantise the output convolution too (faster "
            "for small models, a little less clean)", default=False, kind="switch"),
    Setting("int8_ranges", choice(("minmax", "percentile")), "onnx-int8: activation ranges "
            "from the calibration frames' extremes, or their 99.999th percentile (outliers "
            "clipped, finer steps)", default="minmax", metavar="HOW"),
    Setting("export_out", path, "output folder for ONNX files",
            default_help="the user cache folder", metavar="DIR", flag="--out"),
    Setting("export_size", parse_size, "tensorrt: largest frame size the engine's profile "
            "covers", default=(1920, 1080), metavar="WxH", flag="--size"),
    Setting("export_precision", choice(("fp16", "fp32")), "tensorrt: engine precision",
            default="fp16", metavar="P", flag="--precision"),
    # -- finetune ------------------------------------------------------------------------------
    Setting("finetune_source", text, "the footage to adapt to, noisy frames only: camera index "
            "or /dev/videoN, rtsp:// http(s):// udp:// srt:// URL, video file or image folder",
            kind="positional", metavar="SOURCE"),
    Setting("finetune_output", path, "weights file to write (.pt)", metavar="OUT.pt",
            flag="--output", short="-o"),
    Setting("finetune_model", text, f"model to start from: {', '.join(MODEL_NAMES)} or a "
            "weights file", default=DEFAULT_MODEL, metavar="NAME", flag="--model"),
    Setting("finetune_minutes", number(float, 0, inclusive=False), "fine-tuning budget, wall "
            "clock", default=10.0, metavar="M", flag="--minutes"),
    Setting("dry_run", switch, "only estimate the noise level and the likely gain (a short "
            "probe); write nothing", default=False, kind="switch"),
    Setting("mode", choice(("auto", "video", "stills")), "video: next-frame Noise2Noise; "
            "stills: one shot per scene, learnt from --teacher given the measured noise",
            default="auto", default_help="auto: detected", metavar="MODE"),
    Setting("keep_frames", number(int, 2), "frames kept from the source", default=240,
            metavar="N", flag="--max-frames"),
    Setting("memory", number(float, 0, inclusive=False), "MB of RAM the kept frames may use",
            default=1024.0, metavar="MB"),
    Setting("collect_seconds", number(float, 0, inclusive=False), "seconds to read a live "
            "source (files and folders are read to the end)", default_help="60 for live sources",
            metavar="S"),
    Setting("holdout", number(float, 0, inclusive=False, maximum=0.5), "share of the footage "
            "held back for the guard", default=0.2, metavar="F"),
    Setting("teacher", choice(("auto", "bm3d+nlm", "nlm", "none")), "stills: the reference "
            "denoiser the network learns from, given the measured noise (bm3d+nlm needs the "
            "bm3d package, non-commercial licence); none: recorrupted pairs instead",
            default="auto", default_help="auto: bm3d+nlm if bm3d is installed, else nlm",
            metavar="T"),
    Setting("finetune_lr", number(float, 0, inclusive=False), "peak learning rate",
            default=5e-4, metavar="LR", flag="--lr"),
    Setting("finetune_batch", number(int, 1), "clips per step", default=4, metavar="N",
            flag="--batch"),
    Setting("finetune_patch", number(int, 32), "crop side in pixels, a multiple of 16",
            default=96, metavar="PX", flag="--patch"),
    Setting("checkpoint", path, "checkpoint file (the kept frames go beside it)",
            default_help="OUT.ckpt", metavar="FILE"),
    Setting("finetune_resume", switch, "continue an interrupted or refused run from its "
            "checkpoint and saved frames (same -o)", default=False, kind="switch",
            flag="--resume"),
    Setting("report", path, "write the validation report (the weights' metadata) as JSON",
            metavar="FILE.json"),
)  # fmt: skip

SETTINGS: dict[str, Setting] = {s.name: s for s in _SETTINGS}

#: The settings each command takes, in --help order. ``run``'s are also its YAML keys.
RUN = (
    "source", "output", "backend", "model", "precision", "device", "threads", "strength",
    "policy", "size", "fps", "compare", "max_frames", "duration", "stats_json", "queue_size",
    "timeout", "reconnect_max", "bitrate", "gop", "preset", "crf", "bind", "token", "overwrite",
    "no_audio", "loop", "realtime", "engine_cache", "recalibrate", "still_camera", "two_pass",
    "quiet",
)  # fmt: skip
BENCH = (
    "bench_backends", "sizes", "precisions", "batch", "seconds", "threads", "warmup", "rounds",
    "model", "pipeline", "clip", "pipeline_output", "presets", "json", "markdown",
)  # fmt: skip
EVAL = (
    "data", "sigma", "eval_backends", "noise", "protocol", "seed", "sequence_frames", "still",
    "json", "merge", "markdown", "tune_classical",
)  # fmt: skip
TRAIN = (
    "data_root", "train_model", "minutes", "resume", "out", "checkpoint_dir", "init",
    "train_batch", "frames", "patch", "lr", "seed", "video_share", "fp32", "loss",
    "unclipped_noise", "monochrome", "isp_noise", "device",
)  # fmt: skip
FINETUNE = (
    "finetune_source", "finetune_output", "finetune_model", "finetune_minutes", "dry_run",
    "mode", "teacher", "keep_frames", "memory", "collect_seconds", "holdout", "finetune_lr",
    "finetune_batch", "finetune_patch", "seed", "checkpoint", "finetune_resume", "report", "fp32",
)  # fmt: skip
EXPORT = (
    "export_model", "format", "calibration", "int8_output", "int8_ranges", "export_out",
    "export_size", "export_precision", "engine_cache",
)  # fmt: skip


def default(name: str) -> Any:
    """The default of setting ``name`` (the Python API's dataclasses use this)."""
    return SETTINGS[name].default


def help_text(setting: Setting) -> str:
    """The help line: what it does, its choices (from the parser) and its default."""
    line = setting.help
    choices = getattr(setting.parse, "choices", None)
    if choices:
        line += f" ({', '.join(choices)})"
    shown = setting.shown_default()
    return f"{line} [{shown}]" if shown else line


def add_arguments(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """One argparse argument per setting. Every argparse default is None, so that a YAML
    value can fill what the flags left out; :func:`resolve` applies the table's defaults."""
    for name in names:
        s = SETTINGS[name]
        common = {"dest": name, "help": help_text(s), "default": None}
        if s.kind == "positional":
            parser.add_argument(name, nargs="?", metavar=s.metavar, help=common["help"])
            continue
        flags = [s.short, s.option] if s.short else [s.option]
        if s.kind == "switch":
            parser.add_argument(*flags, action="store_true", **common)
        else:
            action = "append" if s.kind == "append" else "store"
            parser.add_argument(*flags, action=action, metavar=s.metavar, **common)


def load_config_file(file: str | Path, names: Iterable[str] = RUN) -> dict[str, Any]:
    """A YAML mapping of setting: value, keys checked against ``names`` (``-`` may stand for
    ``_``; ``outputs`` for ``output``). Values are parsed by :func:`resolve`."""
    import yaml

    try:
        content = Path(file).read_text()
    except OSError as err:
        raise UsageError(f"cannot read config {file}: {err.strerror}") from None
    try:
        data = yaml.safe_load(content) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"config {file} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config {file} must be a mapping of setting: value")
    found = {str(k).replace("-", "_"): v for k, v in data.items()}
    if "outputs" in found:
        found["output"] = found.pop("outputs")
    known = set(names)
    unknown = sorted(set(found) - known)
    if unknown:
        raise UsageError(
            f"config {file}: unknown setting(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    return found


def resolve(
    names: Iterable[str], given: dict[str, Any], base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every setting in ``names``: the value ``given`` (flags) else in ``base`` (YAML), parsed
    and validated, else the table's default (None where the default is decided later)."""
    values = dict(base or {})
    values.update({k: v for k, v in given.items() if v is not None})
    resolved = {}
    for name in names:
        setting = SETTINGS[name]
        value = values.get(name)
        resolved[name] = setting.default if value is None else setting.parse(value, setting.display)
    return resolved


def pick(values: dict[str, Any], *names: str) -> dict[str, Any]:
    """The resolved ``names`` as keyword arguments (for config fields of the same name)."""
    return {name: values[name] for name in names}


def from_args(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """:func:`resolve` for a parsed command line."""
    names = tuple(names)
    return resolve(names, {name: getattr(args, name, None) for name in names})
