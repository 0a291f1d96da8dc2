import os
import sys

from streamdenoise import interrupts

try:  # the console script's first moments: a signal here is answered like any other
    interrupts.install()
    from streamdenoise.cli import console
except KeyboardInterrupt:  # nothing has started: leave at once (see streamdenoise.cli.leave)
    print("streamdenoise: interrupted", file=sys.stderr, flush=True)
    os._exit(130)

console()
