"""Command line entry point: one subcommand per module in ``streamdenoise.commands``.

User errors (:class:`~streamdenoise.errors.UserError`) become one redacted line on stderr
and a non-zero exit code; only real bugs show a traceback.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import shlex
import sys
import threading
import traceback
from typing import NoReturn

from streamdenoise import interrupts
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
    from streamdenoise import __version__

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
    return interrupts.EXIT_STATUS


def leave(code: int) -> NoReturn:
    """End the process with ``code``, also after a Ctrl+C that was handled.

    CPython records a KeyboardInterrupt that leaves code run by ``exec()`` of a string
    (``dataclasses`` builds its methods that way, so an import can be such a place) and may
    then end the process by SIGINT after the program has ended, whatever the program did
    with the exception (cpython gh-128130): a signal at the wrong moment of the imports gave
    exit status -2 after the one "interrupted" line about once in 30 runs. An interrupted
    process therefore runs its exit handlers and leaves through ``os._exit``; any other
    status leaves the ordinary way."""
    if code != interrupts.EXIT_STATUS:
        sys.exit(code)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def console() -> NoReturn:
    """The process entry point (the ``streamdenoise`` script, ``python -m streamdenoise``)."""
    leave(main())


def _print_bug(text: str) -> None:
    """A real bug still shows its traceback, but never a credential that was in it."""
    print(redact(text), end="", file=sys.stderr)


def _thread_bug(hook: threading.ExceptHookArgs) -> None:
    name = hook.thread.name if hook.thread else "?"
    lines = traceback.format_exception(hook.exc_type, hook.exc_value, hook.exc_traceback)
    _print_bug(f"Exception in thread {name}:\n{''.join(lines)}")


def _missing_gui_library(err: ImportError) -> str | None:
    """The one line for OpenCV's GUI build on a machine without its system libraries."""
    text = str(err)
    if not any(lib in text for lib in ("libGL.so", "libgthread", "libglib", "libxcb", "libX11")):
        return None
    library = text.split(":")[0].strip()
    return (
        f"OpenCV cannot load {library}: install the system libraries its window support "
        "needs (Debian/Ubuntu: apt-get install libgl1 libglib2.0-0), or, on a server that "
        "never opens a window, replace it: pip uninstall opencv-python && "
        "pip install opencv-python-headless"
    )


def main(argv: list[str] | None = None) -> int:
    previous_signals = interrupts.install()
    previous_hook, threading.excepthook = threading.excepthook, _thread_bug
    try:  # building the parser imports the commands: Ctrl+C can land there too
        parser = build_parser()
        args = parser.parse_args(argv)
        # what weights files and reports record as the command that made them
        words = map(str, sys.argv[1:] if argv is None else argv)
        args.command_line = redact("streamdenoise " + shlex.join(words))
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"streamdenoise: error: {redact(str(err))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return interrupted()
    except ImportError as err:
        if not _missing_gui_library(err):
            _print_bug(traceback.format_exc())
            return 1
        print(f"streamdenoise: error: {_missing_gui_library(err)}", file=sys.stderr)
        return 1
    except Exception:
        _print_bug(traceback.format_exc())
        return 1
    finally:
        threading.excepthook = previous_hook
        interrupts.restore(previous_signals)
