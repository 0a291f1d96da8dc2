"""A site whose load changes: ``serve``'s shared ``model: auto`` as cameras come and go.

One ``streamdenoise serve`` (its defaults: ``model: auto``, one shared denoiser) runs looped
camera clips (a noisy H.264 file made from ``shared/datasets/media/clips/01_dog.mp4`` at an IP
camera's bitrate, replayed at its frame rate: ``loop`` + ``realtime``, decoded by PyAV). The
cameras change by phases, each applied by rewriting the config file and ``POST /api/reload``
(default: one camera for 40 s, three for 50 s, one again for 50 s). Every second the script
reads ``/api/cameras``: the tier the shared denoiser runs, the frames each camera delivered
and dropped. The calibration cache is a fresh folder, so the first choice is measured here.

Writes ``serve_auto[_LABEL].{json,md,png}`` to ``--out`` with the machine record: per phase,
the cameras' summed source rate, the share of it delivered, the drops, the tiers that ran and
(``--record``) the x264 presets the recordings' segments were opened at; the switches with
their times and reasons, the preset choices; the timeline as a plot.

    python benchmarks/serve_auto.py --label zen5
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve_cameras import cli, free_port, wait_delivering  # noqa: E402
from suite.clips import camera_bitrate, make_noisy_clip  # noqa: E402
from suite.report import machine_lines, save_results, table  # noqa: E402

from streamdenoise.lab.speed import machine_record  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=15, help="each camera's frame rate")
    parser.add_argument(
        "--phases", default="1:40,3:50,1:50", help="cameras:seconds, comma-separated, in order"
    )
    parser.add_argument(
        "--record", action="store_true", help="each camera records (x264, preset auto), else null"
    )
    parser.add_argument(
        "--segment", type=int, default=60, help="seconds per recorded segment (with --record)"
    )
    parser.add_argument(
        "--preset", default="auto", help="the recordings' x264 preset (with --record)"
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--label", default="")
    parser.add_argument("--render", type=Path, help="summarize and render a stored JSON again")
    return parser.parse_args()


def write_config(path: Path, port: int, clip: Path, cameras: int, work: Path, args):
    outputs = (
        f"preset: {args.preset}, "
        f"record: {{path: '{work}/rec/{{camera}}/%H%M%S.mp4', segment: {args.segment}s}}"
        if args.record
        else "outputs: ['null']"
    )
    lines = [f"http: {{port: {port}}}", "cameras:"]
    lines += [
        f"  cam{i}: {{source: '{clip}', loop: true, realtime: true, {outputs}}}"
        for i in range(cameras)
    ]
    path.write_text("\n".join(lines) + "\n")


def api(port: int, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/{path}", method=method)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def sample(port: int, started: float) -> dict:
    doc = api(port, "api/cameras")
    cameras = {c["name"]: c for c in doc["cameras"]}
    (denoiser,) = doc["denoisers"]
    return {
        "t_s": round(time.monotonic() - started, 2),
        "tier": f"{denoiser.get('tier')}/{denoiser.get('precision')}",
        "cameras": {
            name: {
                "frames_out": camera["frames_out"],
                "source_drops": camera["drops"]["source_queue"],
                # the preset of the segment each recording is writing
                "x264_presets": [o["x264_preset"] for o in camera["outputs"] if "segments" in o],
            }
            for name, camera in cameras.items()
        },
        "denoiser": denoiser,
    }


def run(args, clip: Path, work: Path, env: dict) -> dict:
    phases = [tuple(int(v) for v in p.split(":")) for p in args.phases.split(",")]
    port = free_port()
    config = work / "site.yaml"
    write_config(config, port, clip, phases[0][0], work, args)
    log = open(work / "serve.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(cli("serve", str(config)), stderr=log, cwd=work, env=env)
    samples: list[dict] = []
    bounds = []
    try:
        wait_delivering(process, port, phases[0][0], work / "serve.log", 180)  # calibrated
        started = time.monotonic()
        for index, (cameras, seconds) in enumerate(phases):
            if index:
                write_config(config, port, clip, cameras, work, args)
                api(port, "api/reload", "POST")
            begin = time.monotonic() - started
            while time.monotonic() - started < begin + seconds:
                time.sleep(1.0)
                samples.append(sample(port, started))
            bounds.append({"cameras": cameras, "from_s": round(begin, 2), "seconds": seconds})
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
        log.close()
    return {"phases": summarize(samples, bounds, args.fps), "samples": samples}


def delivered(inside: list[dict], fps: int) -> tuple[int, float, float, float]:
    """Between the first and last of ``inside``: cameras, frames delivered per second, their
    share of the cameras' rate, and the share of frames dropped."""
    first, last = inside[0], inside[-1]
    names = [n for n in last["cameras"] if n in first["cameras"]]
    elapsed = last["t_s"] - first["t_s"]
    out_frames = sum(
        last["cameras"][n]["frames_out"] - first["cameras"][n]["frames_out"] for n in names
    )
    dropped = sum(
        last["cameras"][n]["source_drops"] - first["cameras"][n]["source_drops"] for n in names
    )
    return (
        len(names),
        out_frames / elapsed,
        out_frames / (len(names) * fps * elapsed),
        dropped / max(1, out_frames + dropped),
    )


def summarize(samples: list[dict], bounds: list[dict], fps: int) -> list[dict]:
    """Per phase: frames delivered and dropped between its first and last sample (its first
    5 s left out: cameras starting), the same over its second half (settled: switches made,
    recordings at their next segment), and the tiers seen."""
    out = []
    for phase in bounds:
        start, end = phase["from_s"] + 5, phase["from_s"] + phase["seconds"]
        inside = [s for s in samples if start <= s["t_s"] <= end]
        cameras, fps_out, share, dropped = delivered(inside, fps)
        half = phase["from_s"] + phase["seconds"] / 2
        _, _, settled, settled_dropped = delivered([s for s in inside if s["t_s"] >= half], fps)
        out.append(
            {
                **phase,
                "source_fps": cameras * fps,
                "delivered_fps": round(fps_out, 2),
                "delivered_share": round(share, 3),
                "dropped_share": round(dropped, 4),
                "second_half": {
                    "delivered_share": round(settled, 3),
                    "dropped_share": round(settled_dropped, 4),
                },
                "tiers": list(dict.fromkeys(s["tier"] for s in inside)),
                "recording_presets": list(
                    dict.fromkeys(
                        preset
                        for s in inside
                        for camera in s["cameras"].values()
                        for preset in camera.get("x264_presets", [])
                    )
                ),
            }
        )
    return out


def recordings(doc: dict) -> str:
    preset = doc.get("preset", "auto")
    chosen = (
        " (chosen at the shared denoiser's first frame and again when cameras come or go; "
        "each recording takes the choice at its next segment)"
    )
    return f"x264 recordings in {doc.get('segment', 60)} s segments at `preset: {preset}`" + (
        chosen if preset == "auto" else ""
    )


def second_half(phase: dict) -> str:
    half = phase.get("second_half")
    return f"{half['delivered_share']:.0%}, {half['dropped_share']:.1%}" if half else "–"


def tried(steps: list[dict] | None) -> str:
    """The presets a choice tried: each with its codec cost and whether a tier fitted."""
    return ", ".join(
        f"{s['preset']} ({s['codec_ms_per_frame']:.1f} ms, {'fits' if s['fits'] else 'no fit'})"
        for s in steps or []
    )


def render(doc: dict) -> str:
    result = doc["result"]
    switches = result["samples"][-1]["denoiser"].get("switches", [])
    first = result["samples"][0]["denoiser"]
    lines = [
        "# `serve` with `model: auto` as cameras come and go",
        "",
        *machine_lines(doc["machine"]),
        "",
        f"Cameras: {doc['size']} at {doc['fps']} fps each, a noisy H.264 clip (01_dog.mp4, "
        f"AWGN σ = 15, {doc['bitrate'] / 1e6:.1f} Mbit/s) looped in real time; outputs: "
        f"{recordings(doc) if doc['record'] else 'null'}. Phases applied by "
        "`POST /api/reload`; per phase its first 5 s left out. A fresh calibration cache: "
        f"the first choice, {first.get('tier')}/{first.get('precision')} for "
        f"{first.get('source_fps')} fps, was measured at startup.",
        "",
        *table(
            ["from", "cameras", "source fps", "delivered fps", "delivered", "dropped"]
            + ["second half: delivered, dropped", "tiers"]
            + (["recordings' presets"] if doc["record"] else []),
            [
                [
                    f"{p['from_s']:.0f} s",
                    str(p["cameras"]),
                    f"{p['source_fps']}",
                    f"{p['delivered_fps']:.1f}",
                    f"{p['delivered_share']:.0%}",
                    f"{p['dropped_share']:.1%}",
                    second_half(p),
                    " → ".join(p["tiers"]),
                ]
                + ([" → ".join(p.get("recording_presets", []))] if doc["record"] else [])
                for p in result["phases"]
            ],
        ),
        "",
        "Switches (seconds since the shared denoiser's first frame):",
        "",
        *table(
            ["t", "from", "to", "reason"],
            [[f"{s['t_s']:.1f} s", s["from"], s["to"], s["reason"]] for s in switches],
        ),
    ]
    last = result["samples"][-1]["denoiser"]
    if doc["record"] and doc.get("preset", "auto") == "auto":
        lines += [
            "",
            f"The recordings' preset, first chosen for {first.get('source_fps')} fps: "
            f"{tried(first.get('x264_preset_steps'))}; chosen again as the cameras changed "
            "(seconds since the first frame; each preset tried with its codec ms per frame and "
            "whether a tier fits beside it):",
            "",
            *table(
                ["t", "cameras", "fps", "presets tried", "chosen"],
                [
                    [
                        "–" if c["t_s"] is None else f"{c['t_s']:.1f} s",
                        str(c["sources"]),
                        f"{c['fps']:g}",
                        tried(c["steps"]),
                        c["preset"],
                    ]
                    for c in last.get("x264_preset_choices") or []
                ],
            ),
        ]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = doc["result"]["samples"]
    t = [s["t_s"] for s in samples]
    source = [len(s["cameras"]) * doc["fps"] for s in samples]
    delivered = [0.0] + [
        sum(
            b["cameras"][n]["frames_out"] - a["cameras"][n]["frames_out"]
            for n in b["cameras"]
            if n in a["cameras"]
        )
        / (b["t_s"] - a["t_s"])
        for a, b in itertools.pairwise(samples)
    ]
    # the denoiser's ladder, weakest first, and any tier seen that is not on it
    ladder = samples[-1]["denoiser"].get("rungs", [])
    tiers = ladder + [s["tier"] for s in samples if s["tier"] not in ladder]
    tiers = list(dict.fromkeys(tiers))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    top.plot(t, source, label="cameras' summed frame rate", color="grey", linestyle="--")
    top.plot(t, delivered, label="frames delivered per second", color="tab:blue")
    top.set_ylabel("frames / s")
    top.legend(loc="lower right")
    bottom.step(t, [tiers.index(s["tier"]) for s in samples], where="post", color="tab:orange")
    bottom.set_yticks(range(len(tiers)), tiers)
    bottom.set_xlabel("seconds")
    bottom.set_ylabel("tier")
    fig.suptitle(f"serve, model: auto, {doc['size']} cameras at {doc['fps']} fps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    args = parse_args()
    if args.render:  # a stored run, summarized and rendered again
        doc = json.loads(args.render.read_text())
        bounds = [
            {k: p[k] for k in ("cameras", "from_s", "seconds")} for p in doc["result"]["phases"]
        ]
        doc["result"]["phases"] = summarize(doc["result"]["samples"], bounds, doc["fps"])
        args.render.write_text(json.dumps(doc, indent=1) + "\n")
        args.render.with_suffix(".md").write_text(render(doc))
        return 0
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="serve-auto-") as tmp:
        work = Path(tmp)
        bitrate = camera_bitrate((width, height))
        source = args.data / "media" / "clips" / "01_dog.mp4"
        clip = make_noisy_clip(source, work / "clip.mp4", (width, height), 300, bitrate, args.fps)
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        doc = {
            "machine": machine_record(),
            "command": " ".join(sys.argv),
            "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "size": args.size,
            "fps": args.fps,
            "bitrate": bitrate,
            "record": args.record,
            "segment": args.segment,
            "preset": args.preset,
            "result": run(args, clip, work, env),
        }
    save_results(args.out, "serve_auto", args.label, doc, render, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
