import os
import sys

try:  # the console script's first moments: a signal here is answered like any other
    from streamdenoise import interrupts

    interrupts.install()
    from streamdenoise.cli import console
except KeyboardInterrupt:  # nothing has started: leave at once (see streamdenoise.cli.leave)
    print("streamdenoise: interrupted", file=sys.stderr, flush=True)
    os._exit(interrupts.EXIT_STATUS)

console()
