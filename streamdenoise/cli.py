"""Command line entry point: one subcommand per module in ``streamdenoise.commands``.

User errors (:class:`~streamdenoise.errors.UserError`) become one redacted line on stderr
and a non-zero exit code; only real bugs show a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from streamdenoise import __version__
from streamdenoise.errors import UserError
from streamdenoise.redact import redact

# subcommand -> (module, one-line help). Modules expose add_arguments(parser) and run(args).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("streamdenoise.commands.run", "denoise a source into one or more outputs"),
    "serve": ("streamdenoise.commands.serve", "run many cameras with one shared denoiser"),
    "devices": ("streamdenoise.commands.devices", "list backends, accelerators and cameras"),
    "bench": ("streamdenoise.commands.bench", "measure denoiser fps and latency"),
    "eval": ("streamdenoise.commands.eval", "measure denoising quality against baselines"),
    "train": ("streamdenoise.commands.train", "train a denoising model"),
    "finetune": (
        "streamdenoise.commands.finetune",
        "adapt a model to your camera from its noisy footage alone",
    ),
    "export": ("streamdenoise.commands.export", "export a model to ONNX or TensorRT"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other usage error
        self.exit(2, f"{self.prog}: error: {redact(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="streamdenoise", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"streamdenoise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # command not built into this installation
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def interrupted() -> int:
    """Ctrl+C / SIGTERM before the pipeline owns the signals: one line, exit code 130."""
    print("streamdenoise: interrupted", file=sys.stderr)
    return 130


def main(argv: list[str] | None = None) -> int:
    try:  # building the parser imports the commands: Ctrl+C can land there too
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"streamdenoise: error: {redact(str(err))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return interrupted()
