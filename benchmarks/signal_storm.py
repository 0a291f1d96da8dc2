"""Ctrl+C and SIGTERM at random moments of a real run, many times: does every run stop?

    python benchmarks/signal_storm.py --runs 1000 --label xeon-amx
    python benchmarks/signal_storm.py --code /path/to/older/checkout --label xeon-amx-before

Each run is ``python -m streamdenoise run demo --loop`` into an MP4 and an MKV (identity
backend, 320×180), started as an interactive shell starts it (SIGINT at its default), sent
SIGINT or SIGTERM after a random 20–500 ms — across CPython's start-up, the imports, opening
the outputs and streaming — and given 20 s to end. Outcomes:

- **stopped**: exit 130, one line starting ``streamdenoise: interrupted``, each output absent
  or decoding to at least one frame;
- **before the program**: the signal came before the program's first line (CPython's start-up
  or the package import runpy does first): ended by the signal's default, or CPython's own
  message — what any Python program does there;
- **went on**: still running after 20 s — a lost stop (its threads' stacks are kept, through
  faulthandler);
- **other**: anything else (a traceback from the program, a wrong exit code, a broken file).

Writes JSON + markdown under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from streamdenoise.lab.speed import cpu_description, machine_record, write_report

ROOT = Path(__file__).resolve().parents[1]
GIVEN_S = 20.0
OUTCOMES = ("stopped", "before the program", "went on", "other")


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _before_program(returncode: int, stderr: str) -> bool:
    """Ended inside CPython's start-up (``site``), or by the signal's default with no frame of
    the program's own in what it printed (the package's ``__init__``, which runpy imports
    first, aside)."""
    if returncode == 1 and "init_import_site" in stderr:
        return True
    program_frames = [
        line for line in stderr.splitlines()
        if "streamdenoise" in line and "File " in line and "__init__.py" not in line
    ]  # fmt: skip
    return returncode in (-signal.SIGINT, -signal.SIGTERM) and not program_frames


def _code_path(code: Path | None) -> dict[str, str]:
    """Run the program from another checkout (an older commit, to compare), ahead of the
    installed one on the module search path."""
    return {} if code is None else {"PYTHONPATH": str(code.resolve())}


def _commit(code: Path) -> str:
    done = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() or "unknown"


def _span_ms(delays_s: list[float]) -> str:
    return f"{min(delays_s) * 1000:.0f}–{max(delays_s) * 1000:.0f} ms" if delays_s else "–"


def one_run(
    delay_s: float, sig: signal.Signals, folder: Path, code: Path | None = None
) -> tuple[str, str]:
    outs = [folder / "a.mp4", folder / "b.mkv"]
    command = [
        sys.executable,
        "-m",
        "streamdenoise",
        "run",
        "demo",
        "--backend",
        "identity",
        "--size",
        "320x180",
        "--loop",
        "-q",
        "-o",
        str(outs[0]),
        "-o",
        str(outs[1]),
    ]
    proc = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONFAULTHANDLER": "1", **_code_path(code)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(delay_s)
    proc.send_signal(sig)
    try:
        _, stderr = proc.communicate(timeout=GIVEN_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        _, stderr = proc.communicate()
        return "went on", stderr[-4000:]
    lines = stderr.strip().splitlines()
    if (
        proc.returncode == 130
        and len(lines) == 1
        and lines[0].startswith("streamdenoise: interrupted")
    ):
        broken = [out.name for out in outs if out.exists() and _frames(out) == 0]
        return ("other", f"outputs without a frame: {broken}") if broken else ("stopped", "")
    if _before_program(proc.returncode, stderr):
        return "before the program", ""
    return "other", f"exit {proc.returncode}: {stderr[-2000:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", required=True, help="machine label for the file names")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reliability")
    parser.add_argument("--code", type=Path, help="run the program from this checkout instead")
    args = parser.parse_args()
    code = args.code or ROOT
    rng = random.Random(args.seed)
    counts = dict.fromkeys(OUTCOMES, 0)
    delays: dict[str, list[float]] = {outcome: [] for outcome in OUTCOMES}
    details = []
    for index in range(args.runs):
        delay_s = rng.uniform(0.02, 0.5)
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        with tempfile.TemporaryDirectory() as folder:
            outcome, detail = one_run(delay_s, sig, Path(folder), args.code)
        counts[outcome] += 1
        delays[outcome].append(round(delay_s, 3))
        if detail:
            details.append({"run": index, "delay_s": delay_s, "signal": sig.name,
                            "outcome": outcome, "detail": detail})  # fmt: skip
        if outcome in ("went on", "other"):
            print(f"run {index}: {outcome} ({sig.name} after {delay_s * 1000:.0f} ms)")
    machine = machine_record()
    doc = {"runs": args.runs, "seed": args.seed, "given_s": GIVEN_S, "code": _commit(code),
           "counts": counts, "delays_s": delays, "details": details,
           "machine": machine}  # fmt: skip
    rows = "\n".join(
        f"| {outcome} | {counts[outcome]} | {_span_ms(delays[outcome])} |" for outcome in OUTCOMES
    )
    markdown = (
        f"# A stop signal at a random moment ({args.label})\n\n"
        f"CPU: {cpu_description(machine)}. Program at commit {_commit(code)}. {args.runs} runs "
        "of `run demo --loop` into an MP4 "
        "and an MKV, each sent SIGINT or SIGTERM 20–500 ms after launch (seed "
        f"{args.seed}) and given {GIVEN_S:.0f} s to end.\n\n"
        f"| outcome | runs | signal sent after |\n|---|---:|---|\n{rows}\n"
    )
    write_report(args.out / f"signal_storm_{args.label}", doc, markdown)


if __name__ == "__main__":
    main()
