"""``streamdenoise serve CONFIG.yaml``: run every camera of the file until SIGINT/SIGTERM.

SIGHUP (or ``POST /api/reload``) re-reads the file. ``--check`` validates it and exits: 0, or
2 with one line per problem. ``--ray ADDRESS`` (or a ``ray:`` section in the file) runs the
cameras and denoisers as actors of a Ray cluster (:mod:`streamdenoise.serve.cluster`). A
third SIGINT/SIGTERM leaves at once, without waiting for the outputs (fragmented MP4 and MKV
segments still play up to their last complete part).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from streamdenoise import interrupts
from streamdenoise.errors import UsageError

#: Signals after which serve leaves without finalizing. Not 2: supervisors (``timeout``, some
#: init systems) signal the process and then its group, so one stop request can arrive twice.
HARD_EXIT_SIGNALS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml", help="cameras, defaults and http settings")
    parser.add_argument(
        "--check", action="store_true", help="validate CONFIG and exit (0, or 2 with the problems)"
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run on the Ray cluster whose head is at ADDRESS (host:port, or auto); "
        "overrides ray.address of CONFIG",
    )


def run(args: argparse.Namespace) -> int:
    from streamdenoise.commands.run import setup_logging
    from streamdenoise.serve import config as serve_config

    setup_logging()
    config, problems = serve_config.load(args.config, args.ray)
    if config is not None and config.ray is not None:
        from streamdenoise.serve.cluster import ray_missing

        missing = ray_missing()
        problems = [missing] if missing else problems
        config = None if missing else config
    if args.check:
        for line in problems:
            print(f"streamdenoise: {line}", file=sys.stderr)
        if not problems:
            cameras = len(config.cameras)
            print(f"{args.config}: ok ({cameras} camera{'s' * (cameras != 1)})")
        return 2 if problems else 0
    if config is None:
        for line in problems[:-1]:
            print(f"streamdenoise: {line}", file=sys.stderr)
        raise UsageError(problems[-1])
    return serve(config)


def serve(config) -> int:
    if config.ray is not None:
        from streamdenoise.serve.cluster import ClusterServer, connect

        connect(config.ray)
        make = ClusterServer
    else:
        from streamdenoise.serve.server import Server as make

    stop, reload = threading.Event(), threading.Event()

    signals = []

    def on_stop(signum, _frame) -> None:
        signals.append(signum)
        if len(signals) >= HARD_EXIT_SIGNALS:  # insisted: leave now, files play to their last GOP
            print("streamdenoise: stopped without finalizing", file=sys.stderr)
            os._exit(interrupts.EXIT_STATUS)
        if len(signals) == 1:
            print("streamdenoise: stopping (finalizing outputs)...", file=sys.stderr)
        stop.set()

    handlers = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop}
    handlers[signal.SIGHUP] = lambda *_: reload.set()
    with interrupts.handled_by(handlers):
        server = make(config)
        try:
            server.start()
            while not stop.wait(0.2):
                if reload.is_set():
                    reload.clear()
                    server.reload()
        finally:
            server.shutdown()
    print("streamdenoise: stopped; outputs finalized", file=sys.stderr)
    return interrupts.EXIT_STATUS
