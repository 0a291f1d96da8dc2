"""How many cameras one `serve` sustains at full frame rate, against separate `run`s.

For each case (WIDTHxHEIGHT@FPS) the camera count climbs ``--counts`` until a mode no longer
keeps every camera at >= 95 % of the source frame rate. A camera is a looped H.264 clip paced
at its frame rate (``loop`` + ``realtime``: what a live camera delivers, decoded by PyAV as an
RTSP stream would be), denoised into a ``null`` output.

Modes:
* ``serve``: one ``streamdenoise serve`` with N cameras sharing one denoiser, its default
  batching (one frame a call on a CPU, up to 16 on a GPU); the fps of each camera is read
  from ``/api/cameras`` over the measured window, after the warm-up.
* ``serve-batched``: the same with ``max_batch: --max-batch``.
* ``run``: N separate ``streamdenoise run`` processes, each loading its own model; each one's
  fps comes from its ``--stats-json`` (frames out over the time from its first frame).
* ``serve-unbatched``: ``serve`` with ``max_batch: 1`` (round-robin, one frame per call).

``--gpu`` measures 1920x1080@30 with ``serve-batched`` (up to 16 a call) against
``serve-unbatched`` on CUDA, 1 to 32 cameras. ``--calls-only`` times the shared denoiser
alone: K streams' frames in one call against K calls of one frame (interleaved rounds, so the
ratio holds even on a busy machine).

Writes JSON, markdown and a PNG under benchmarks/results/ (``--out`` sets the stem), with the
machine (CPU model and flags: AVX2 vs AVX-512/bf16; GPUs; load average at start and end).
Speed figures are only comparable within one run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from rtsp_control import free_port  # noqa: E402

from streamdenoise.lab.speed import machine_record  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SUSTAINED = 0.95  # share of the source frame rate every camera must keep
CLIP_SECONDS = 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="640x360@15,1280x720@30",
                        help="WIDTHxHEIGHT@FPS list [%(default)s]")  # fmt: skip
    parser.add_argument(
        "--modes", default="serve,run", help="serve, serve-batched, serve-unbatched, run"
    )
    parser.add_argument(
        "--counts", default="1,2,3,4,5,6,8", help="camera counts to try, in order [%(default)s]"
    )
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--max-batch", type=int, default=8, help="serve's denoiser.max_batch")
    parser.add_argument(
        "--camera",
        default="{}",
        help="camera settings as YAML, e.g. '{model: spatial}' [backend auto, default model]",
    )
    parser.add_argument("--gpu", action="store_true", help="1080p30 batched vs unbatched, CUDA")
    parser.add_argument(
        "--calls-only",
        action="store_true",
        help="only time the shared denoiser: K streams in one call vs K calls of one",
    )
    parser.add_argument(
        "--out", default="serve_cameras", help="file stem under results/, or a path [%(default)s]"
    )
    args = parser.parse_args()
    if args.gpu:
        args.cases, args.modes = "1920x1080@30", "serve-batched,serve-unbatched"
        args.max_batch = 16
        if args.counts == "1,2,3,4,5,6,8":
            args.counts = "1,4,8,12,16,20,24,32"
        args.camera = args.camera if args.camera != "{}" else "{device: cuda}"
        args.out = args.out if args.out != "serve_cameras" else "serve_cameras_gpu"
    return args


def make_clip(path: Path, width: int, height: int, fps: int) -> Path:
    """A noisy moving test clip: gradient, a square crossing it, Gaussian noise σ≈15."""
    import av

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 100)], -1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(CLIP_SECONDS * fps):
            img = base.copy()
            x = (i * 6) % max(width - 64, 1)
            img[height // 3 : height // 3 + 64, x : x + 64] = 240
            img = np.clip(img + rng.normal(0, 15, img.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamdenoise", *args]


def fetch_cameras(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=10) as r:
        return {c["name"]: c for c in json.loads(r.read())["cameras"]}


def measure_serve(clip: Path, n: int, args, max_batch: int | None, work: Path) -> dict:
    port = free_port()
    camera = f"{{source: '{clip}', loop: true, realtime: true, outputs: ['null']}}"
    lines = [f"http: {{port: {port}}}", f"denoiser: {{max_batch: {max_batch or 'auto'}}}",
             f"defaults: {args.camera}", "cameras:"]  # fmt: skip
    lines += [f"  cam{i}: {camera}" for i in range(n)]
    config = work / f"serve-{n}.yaml"
    config.write_text("\n".join(lines) + "\n")
    with open(work / f"serve-{n}.log", "w") as log:
        process = subprocess.Popen(cli("serve", str(config)), stderr=log, cwd=work)
        return _measure(process, port, n, args, work)


def wait_delivering(process: subprocess.Popen, port: int, n: int, log: Path, timeout: float):
    """Until serve is up and each of its ``n`` cameras has delivered a frame."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cams = fetch_cameras(port)
            if len(cams) == n and all(c["frames_out"] > 0 for c in cams.values()):
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"serve did not start: see {log}")
        time.sleep(0.5)


def _measure(process: subprocess.Popen, port: int, n: int, args, work: Path) -> dict:
    try:
        wait_delivering(process, port, n, work / f"serve-{n}.log", 120)
        time.sleep(args.warmup)
        first, start = fetch_cameras(port), time.monotonic()
        time.sleep(args.seconds)
        last, elapsed = fetch_cameras(port), time.monotonic() - start
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=10) as r:
            denoisers = json.loads(r.read())["denoisers"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    fps = [(last[k]["frames_out"] - first[k]["frames_out"]) / elapsed for k in sorted(last)]
    drops = sum(
        sum(last[k]["drops"].values()) - sum(first[k]["drops"].values()) for k in sorted(last)
    )
    return {"fps": fps, "drops": drops, "denoiser": denoisers[0] if denoisers else None}


def measure_runs(clip: Path, n: int, args, work: Path) -> dict:
    extra = _yaml(args.camera)
    flags = [item for key, value in extra.items() for item in (f"--{key}", str(value))]
    duration = args.warmup + args.seconds
    processes = []
    for i in range(n):
        stats = work / f"run-{n}-{i}.json"
        argv = cli("run", str(clip), "-o", "null", "--loop", "--realtime", "--quiet",
                   "--duration", str(duration), "--stats-json", str(stats), *flags)  # fmt: skip
        processes.append((subprocess.Popen(argv, stderr=subprocess.DEVNULL, cwd=work), stats))
    fps, drops = [], 0
    for process, stats in processes:
        process.wait(timeout=duration + 300)
        doc = json.loads(stats.read_text()) if stats.exists() else {}
        fps.append(float(doc.get("fps_out", 0.0)))
        drops += int(doc.get("drops", 0))
    return {"fps": fps, "drops": drops}


def _yaml(text: str) -> dict:
    import yaml

    return yaml.safe_load(text) or {}


def run_case(case: str, args, work: Path) -> list[dict]:
    size, fps = case.split("@")
    width, height = (int(v) for v in size.split("x"))
    clip = make_clip(work / f"clip-{size}-{fps}.mp4", width, height, int(fps))
    rows = []
    for mode in args.modes.split(","):
        for n in (int(c) for c in args.counts.split(",")):
            if mode == "run":
                result = measure_runs(clip, n, args, work)
            else:
                batch = {"serve-unbatched": 1, "serve-batched": args.max_batch}.get(mode)
                result = measure_serve(clip, n, args, batch, work)
            worst = min(result["fps"]) if result["fps"] else 0.0
            ok = worst >= SUSTAINED * float(fps)
            rows.append({"case": case, "mode": mode, "cameras": n, "min_fps": round(worst, 2),
                         "mean_fps": round(float(np.mean(result["fps"])), 2),
                         "sustained": ok, "drops": result["drops"],
                         "denoiser": result.get("denoiser")})  # fmt: skip
            print(f"{case} {mode} x{n}: min {worst:.1f} fps {'ok' if ok else 'NOT sustained'}",
                  flush=True)  # fmt: skip
            if not ok:
                break
    return rows


def best(rows: list[dict], case: str, mode: str) -> int:
    ok = [r["cameras"] for r in rows if r["case"] == case and r["mode"] == mode and r["sustained"]]
    return max(ok, default=0)


def out_stem(out: str) -> Path:
    """``--out``: a name under benchmarks/results/, or a path (with a ``/``) of its own."""
    stem = Path(out) if "/" in out else RESULTS / out
    stem.parent.mkdir(parents=True, exist_ok=True)
    return stem


def write_reports(rows: list[dict], args, machine: dict) -> None:
    stem = out_stem(args.out)
    doc = {"settings": vars(args), "machine": machine, "rows": rows}
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    cases, modes = args.cases.split(","), args.modes.split(",")
    cpu = machine["cpu"]
    lines = [
        "# Cameras sustained at full frame rate: one `serve` against separate `run`s",
        "",
        f"Machine: {cpu['model']}, {cpu['cores']} logical cores, flags "
        f"{', '.join(cpu['flags'])}; GPUs: {', '.join(machine['gpus']) or 'none'}; load "
        f"{machine['load_avg_1m']} at start, {machine['load_end']} at the end.",
        f"Camera settings: {args.camera}; serve-batched max_batch {args.max_batch}; "
        f"sustained = every camera >= {SUSTAINED:.0%} of the source rate over "
        f"{args.seconds:g} s after {args.warmup:g} s warm-up.",
        "",
        "| case | " + " | ".join(f"{m}: cameras" for m in modes) + " |",
        "|---|" + "---:|" * len(modes),
    ]
    for case in cases:
        lines.append(f"| {case} | " + " | ".join(str(best(rows, case, m)) for m in modes) + " |")
    lines += ["", "| case | mode | cameras | min fps | mean fps | drops | sustained |",
              "|---|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        sustained = "yes" if r["sustained"] else "no"
        lines.append(
            f"| {r['case']} | {r['mode']} | {r['cameras']} | {r['min_fps']} | {r['mean_fps']} | "
            f"{r['drops']} | {sustained} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    plot(rows, cases, modes, stem.with_suffix(".png"))


def write_calls(rows: list[dict], args, machine: dict) -> None:
    stem = out_stem(f"{args.out}_calls")
    doc = {"settings": vars(args), "machine": machine, "rows": rows}
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    cpu = machine["cpu"]
    lines = [
        "# The shared denoiser: K streams in one call vs K calls of one frame",
        "",
        f"Machine: {cpu['model']}, {cpu['cores']} logical cores, flags "
        f"{', '.join(cpu['flags'])}; GPUs: {', '.join(machine['gpus']) or 'none'}; load "
        f"{machine['load_avg_1m']} at start, {machine['load_end']} at the end. Median of "
        "interleaved rounds; times include the per-frame host work (noise estimate, motion).",
        "",
        "| case | backend | model | streams | batched ms/frame | one by one ms/frame | speed-up |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['backend']} | {r['model']} | {r['streams']} | "
            f"{r['batched_ms_per_frame']} | {r['single_ms_per_frame']} | {r['speedup']} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(stem.with_suffix(".md").read_text())


def plot(rows: list[dict], cases: list[str], modes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cases), figsize=(5.5 * len(cases), 4), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=True):
        target = float(case.split("@")[1])
        for mode in modes:
            mine = [r for r in rows if r["case"] == case and r["mode"] == mode]
            ax.plot([r["cameras"] for r in mine], [r["min_fps"] for r in mine], "o-", label=mode)
        ax.axhline(target * SUSTAINED, color="grey", linestyle="--", label="95 % of source")
        ax.set(title=case, xlabel="cameras", ylabel="slowest camera, fps")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def measure_calls(args, rounds: int = 5) -> list[dict]:
    """The shared denoiser alone: K frames of K streams in one call against K calls of one,
    interleaved round by round (so machine load hits both alike), per case and K."""
    from streamdenoise.runtime import choose_backend
    from streamdenoise.serve.service import create_service

    camera = _yaml(args.camera)
    backend, model = choose_backend(camera.get("backend", "auto"), camera.get("model"),
                                    camera.get("device"), camera.get("precision"))  # fmt: skip
    device = camera.get("device")
    service = create_service(backend, model=model, precision=camera.get("precision"),
                             device=None if device == "auto" else device)  # fmt: skip
    rows = []
    for case in args.cases.split(","):
        width, height = (int(v) for v in case.split("@")[0].split("x"))
        rng = np.random.default_rng(0)
        for k in (2, 4, 8):
            if k > args.max_batch:
                break
            frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(k)]
            states = [service.new_state() for _ in range(k)]
            service.denoise(frames, states)  # compile / warm up both shapes
            for frame, state in zip(frames, states, strict=True):
                service.denoise([frame], [state])
            batched, single = [], []
            for _ in range(rounds):
                start = time.perf_counter()
                _, states = service.denoise(frames, states)
                batched.append(time.perf_counter() - start)
                start = time.perf_counter()
                for i, frame in enumerate(frames):
                    _, (states[i],) = service.denoise([frame], [states[i]])
                single.append(time.perf_counter() - start)
            per_frame = {
                "batched_ms_per_frame": round(float(np.median(batched)) / k * 1000, 1),
                "single_ms_per_frame": round(float(np.median(single)) / k * 1000, 1),
            }
            row = {"case": case, "streams": k, "backend": backend, "model": model, **per_frame}
            row["speedup"] = round(row["single_ms_per_frame"] / row["batched_ms_per_frame"], 2)
            print(f"calls {case} x{k}: batched {row['batched_ms_per_frame']} ms/frame, "
                  f"one at a time {row['single_ms_per_frame']} ms/frame", flush=True)  # fmt: skip
            rows.append(row)
    service.close()
    return rows


def main() -> int:
    args = parse_args()
    machine = machine_record()
    if args.calls_only:
        calls = measure_calls(args)
        machine["load_end"] = round(os.getloadavg()[0], 2)
        write_calls(calls, args, machine)
        return 0
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        for case in args.cases.split(","):
            rows += run_case(case, args, Path(tmp))
    machine["load_end"] = round(os.getloadavg()[0], 2)
    write_reports(rows, args, machine)
    print(out_stem(args.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
