import signal
import sys

try:  # the console script's first moments: a signal here is answered like any other
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    from streamdenoise.cli import main
except KeyboardInterrupt:
    print("streamdenoise: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
