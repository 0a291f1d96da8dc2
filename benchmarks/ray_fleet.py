"""A camera fleet on a Ray cluster, simulated on one machine: what the engine costs.

Starts a real Ray cluster on 127.0.0.1 (``ray.cluster_utils``: a head, two camera nodes and a
denoiser node, each its own raylet and object store) and measures:

1. **Transport** of one 1080p frame and of a camera's recurrent state between a stream worker
   and a replica, as call arguments (Ray moves values above 100 KiB through the object store
   of the node that made them) or as references the sender ``ray.put`` first, on one node and
   across two; wall time and CPU time of every process of the cluster per call.
2. **Engine overhead**: the same fleet of synthetic cameras (the project's ``demo`` source,
   ``--size`` at ``--fps``, looped and paced) through an in-process ``serve`` and through
   ``serve --ray`` (cameras in groups of ``--per-worker``, one replica), CPU time per frame
   of every process involved. The denoiser is torch ``fixed`` at strength 0: the service path
   runs (batches, states, calls), the network does not, so the figures are the engine's.
3. **A node failure**: one camera node killed as a machine dies (its raylet and everything
   under it); the time until its cameras are live on the other node, the frames they lost,
   and the frame rate of the other cameras meanwhile. Ray's own failure detection (a health
   check every 3 s, dead after 5 misses) is left at its defaults.
4. **A paper estimate** of the machines 1,000 1080p30 cameras need, from these figures and
   the GPU figures measured earlier on an H200 (``benchmarks/results/gpu/``).

Writes JSON, markdown and a PNG to benchmarks/results/ray_fleet.*, with the machine and its
load average at start and end. Run it with ``nice``; under load the CPU-time figures hold
better than the wall times.
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
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # a cluster on 127.0.0.1 only

from rtsp_control import free_port  # noqa: E402

from streamdenoise.lab.speed import cpu_description, machine_record, write_report  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
GPU_RESULTS = RESULTS / "gpu"
FRAME_1080P = (1080, 1920, 3)
#: The recurrent state of the temporal models at 1080p: 6 channels, padded to 1088 rows, fp32.
STATE_1080P = (1, 6, 1088, 1920)
NODE_STORE = 600 * 2**20
TRANSPORT_CALLS = 20
#: Frame rates are taken over windows this long (the head refreshes its view once a second).
WINDOW_S = 3.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=60)
    parser.add_argument("--size", default="160x90")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--per-worker", type=int, default=10, help="cameras per stream worker")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="transport: interleaved rounds")
    parser.add_argument("--out", default="ray_fleet", help="file stem under results/")
    return parser.parse_args()


# -- the cluster --------------------------------------------------------------------------------
def start_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "object_store_memory": NODE_STORE,
            "include_dashboard": False,
        },
    )
    nodes = {
        name: cluster.add_node(num_cpus=8, object_store_memory=NODE_STORE, resources=resources)
        for name, resources in (("a", {"cam": 1000}), ("b", {"cam": 1000}), ("d", {"denoise": 10}))
    }
    return cluster, nodes


def cpu_by_pid(root: int | None = None) -> dict[int, float]:
    """CPU seconds of each living process under ``root`` (default: this script, so the
    cluster and serve), by process id."""
    import psutil

    try:
        top = psutil.Process(root) if root else psutil.Process()
        processes = [top, *top.children(recursive=True)] if root else top.children(recursive=True)
    except psutil.Error:
        return {}
    times = {}
    for process in processes:
        try:
            cpu = process.cpu_times()
        except psutil.Error:
            continue
        times[process.pid] = cpu.user + cpu.system
    return times


def cpu_since(before: dict[int, float], root: int | None = None) -> float:
    """CPU seconds used since ``before`` by the processes alive now (a process that ended
    meanwhile is not counted; one that started is, whole)."""
    return sum(t - before.get(pid, 0.0) for pid, t in cpu_by_pid(root).items())


def stop_node(node) -> None:
    import psutil

    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    for process in [raylet, *raylet.children(recursive=True)]:
        process.send_signal(signal.SIGKILL)


# -- 1. transport -------------------------------------------------------------------------------
class Replica:
    """Stands in for a denoiser replica: hands back what it got (transport, no work)."""

    def by_value(self, frame, state):
        return frame, state

    def frame_by_reference(self, frame_refs):
        """The caller ``ray.put`` the frame and sent the reference; the answer is a value."""
        import ray

        return ray.get(frame_refs[0])

    def state_by_reference(self, frame, state_refs):
        """What serve does: the frame as a value, the state left in this node's store."""
        import ray

        return frame, [ray.put(_state(state_refs[0]))]


def _state(ref) -> np.ndarray:
    """The state behind ``ref``, or a fresh one."""
    import ray

    return np.zeros(STATE_1080P, np.float32) if ref is None else ray.get(ref)


class Caller:
    """Stands in for a stream worker: ``calls`` round trips of one variant, wall times."""

    def run(self, replica, variant: str, calls: int) -> list[float]:
        import ray

        frame = np.random.default_rng(0).integers(0, 255, FRAME_1080P, dtype=np.uint8)
        state = np.zeros(STATE_1080P, np.float32)
        state_ref = None
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            if variant == "frame by value":
                ray.get(replica.by_value.remote(frame, None))
            elif variant == "frame by reference":
                ray.get(replica.frame_by_reference.remote([ray.put(frame)]))
            elif variant == "frame + state by value":
                _, state = ray.get(replica.by_value.remote(frame, state))
            elif variant == "frame by value, state by reference":
                _, (state_ref,) = ray.get(replica.state_by_reference.remote(frame, [state_ref]))
            times.append(time.perf_counter() - start)
        return times


TRANSPORT_VARIANTS = (
    "frame by value",
    "frame by reference",
    "frame + state by value",
    "frame by value, state by reference",
)


def measure_transport(nodes: dict, rounds: int, log) -> list[dict]:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as On

    def on(node) -> On:
        return On(node.node_id, soft=False)

    caller = ray.remote(Caller).options(num_cpus=1, scheduling_strategy=on(nodes["a"])).remote()
    replicas = {
        "same node": ray.remote(Replica).options(num_cpus=1, scheduling_strategy=on(nodes["a"])),
        "across nodes": ray.remote(Replica).options(num_cpus=1, scheduling_strategy=on(nodes["d"])),
    }
    replicas = {where: cls.remote() for where, cls in replicas.items()}
    samples: dict[tuple[str, str], dict] = {}
    for round_ in range(rounds + 1):  # round 0 warms up
        for where, replica in replicas.items():
            for variant in TRANSPORT_VARIANTS:
                before = cpu_by_pid()
                times = ray.get(caller.run.remote(replica, variant, TRANSPORT_CALLS))
                cpu = cpu_since(before)
                if round_ == 0:
                    continue
                entry = samples.setdefault((where, variant), {"wall": [], "cpu": 0.0, "calls": 0})
                entry["wall"] += times
                entry["cpu"] += cpu
                entry["calls"] += len(times)
        if round_:
            log(f"transport: round {round_}/{rounds} done")
    for actor in [caller, *replicas.values()]:
        ray.kill(actor)
    rows = []
    for (where, variant), entry in samples.items():
        moved = np.prod(FRAME_1080P) * 2 + (
            np.prod(STATE_1080P) * 4 * 2 if "+ state" in variant else 0
        )
        rows.append(
            {
                "where": where,
                "variant": variant,
                "wall_ms_p50": round(float(np.median(entry["wall"])) * 1000, 2),
                "cpu_ms_per_call": round(entry["cpu"] / entry["calls"] * 1000, 2),
                "bytes_between_nodes": int(moved) if where == "across nodes" else 0,
            }
        )
    return rows


# -- 2./3. the fleet ------------------------------------------------------------------------------
def fleet_config(path: Path, args, port: int, address: str | None, max_batch: int) -> Path:
    lines = [
        f"http: {{port: {port}}}",
        f"denoiser: {{max_batch: {max_batch}}}",
        f"defaults: {{source: demo, size: {args.size}, fps: {args.fps:g}, loop: true, "
        "realtime: true, backend: torch, model: fixed, precision: fp32, strength: 0, "
        "threads: 1, outputs: ['null']}",
    ]
    if address:
        lines += [
            f"ray: {{address: '{address}', cameras_per_worker: {args.per_worker}, "
            "cpus_per_camera: 0.1, camera_resources: {cam: 1}, replicas: 1, "
            "cpus_per_replica: 1, replica_resources: {denoise: 1}}",
        ]
    lines.append("cameras:")
    lines += [f"  cam{i:03d}: {{}}" for i in range(args.cameras)]
    path.write_text("\n".join(lines) + "\n")
    return path


def api(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=30) as response:
        return json.loads(response.read())


def wait_ready(port: int, process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("serve ended before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError("serve did not become ready")


def frames_out(doc: dict) -> dict[str, int]:
    return {c["name"]: c.get("frames_out") or 0 for c in doc["cameras"]}


def run_fleet(
    args,
    work: Path,
    label: str,
    address: str | None,
    max_batch: int,
    idle_cores: float = 0.0,
    kill=None,
    log=print,
) -> dict:
    """One fleet through serve (in-process when ``address`` is None), measured; ``kill``:
    then stop that node and follow the failure. ``idle_cores``: what the cluster burns idle."""
    port = free_port()
    config = fleet_config(work / f"{label}.yaml", args, port, address, max_batch)
    err = open(work / f"{label}.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "streamdenoise", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=err,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    result: dict = {"label": label, "ray": bool(address), "max_batch": max_batch}
    try:
        wait_ready(port, process, 600)
        time.sleep(args.warmup)

        root = None if address else process.pid  # the cluster too, or serve alone
        doc0, cpu0, t0 = api(port), cpu_by_pid(root), time.monotonic()
        time.sleep(args.seconds)
        cpu = cpu_since(cpu0, root)
        doc1, t1 = api(port), time.monotonic()
        before, after = frames_out(doc0), frames_out(doc1)
        frames = sum(after.values()) - sum(before.values())
        rates = [(after[n] - before[n]) / (t1 - t0) for n in after]
        e2e = [c["e2e_p50_ms"] for c in doc1["cameras"] if c.get("e2e_p50_ms") is not None]
        result |= {
            "cameras": len(after),
            "frames": frames,
            "fps_total": round(frames / (t1 - t0), 1),
            "fps_per_camera_min": round(min(rates), 2),
            "fps_per_camera_median": round(float(np.median(rates)), 2),
            "cpu_ms_per_frame": round(cpu / max(frames, 1) * 1000, 3),
            # what the cluster burns with nothing to do (raylets, agents) is not per frame
            "cpu_ms_per_frame_net": round(
                (cpu - idle_cores * (t1 - t0)) / max(frames, 1) * 1000, 3
            ),
            "cpu_cores_busy": round(cpu / (t1 - t0), 2),
            "e2e_p50_ms_median": round(float(np.median(e2e)), 1) if e2e else None,
            "drops": sum(sum(c["drops"].values()) for c in doc1["cameras"]),
        }
        log(f"{label}: {result}")
        if kill is not None:
            result["failure"] = node_failure(port, kill, args.fps, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
        err.close()
    return result


def node_failure(port: int, node, fps: float, log) -> dict:
    """Kill ``node``; follow every camera through the API every 0.5 s."""
    short = node.node_id[:8]
    doc = api(port)
    moving = sorted(c["name"] for c in doc["cameras"] if c.get("node") == short)
    staying = sorted(c["name"] for c in doc["cameras"] if c.get("node") != short)
    killed = time.monotonic()
    stop_node(node)
    timeline = []  # (seconds since the kill, {camera: (frames_in, state, restarts)})
    back: dict[str, float] = {}
    while time.monotonic() - killed < 180:
        doc = api(port)
        now = time.monotonic() - killed
        rows = {c["name"]: c for c in doc["cameras"]}
        timeline.append(
            (
                now,
                {
                    n: (
                        rows[n].get("frames_out") or 0,
                        rows[n]["state"],
                        rows[n].get("restarts", 0),
                    )
                    for n in rows
                },
            )
        )
        for name in moving:
            row = rows[name]
            if name not in back and row.get("restarts") and (row.get("frames_in") or 0) > 0:
                # its first frame after the restart came frames_in / fps before this sample
                back[name] = now - row["frames_in"] / fps
        if len(back) == len(moving) and now > max(back.values()) + 10:
            break
        time.sleep(0.5)
    recovered = max(back.values()) if len(back) == len(moving) else None
    outage = [back[n] for n in moving if n in back]
    # the other cameras: frames per second in each window from the kill to recovery
    windows = []
    end = recovered or timeline[-1][0]
    for t, sample in timeline:
        later = [(u, s) for u, s in timeline if u >= t + WINDOW_S]
        if not later or t > end:
            continue
        u, s2 = later[0]
        if staying:
            windows.append(min((s2[n][0] - sample[n][0]) / (u - t) for n in staying))
    failure = {
        "node_cameras": len(moving),
        "other_cameras": len(staying),
        "recovery_s": round(recovered, 1) if recovered else None,
        "outage_s_median": round(float(np.median(outage)), 1) if outage else None,
        "frames_lost_per_camera_median": round(float(np.median(outage)) * fps) if outage else None,
        "frames_lost_total": round(sum(outage) * fps) if outage else None,
        "others_min_fps_per_camera": round(min(windows), 2) if windows else None,
        "timeline": [[round(t, 2), {n: v[0] for n, v in s.items()}] for t, s in timeline],
        "moved": moving,
    }
    log(f"node failure: { ({k: v for k, v in failure.items() if k not in ('timeline', 'moved')}) }")
    return failure


# -- 4. paper estimate ----------------------------------------------------------------------------
def gpu_figures() -> dict:
    """The H200 figures measured earlier (benchmarks/results/gpu): 1080p fp16."""

    def row(name: str, mode: str, size: str = "1920x1080", preset: str | None = None) -> dict:
        doc = json.loads((GPU_RESULTS / name).read_text())
        rows = [
            r
            for r in doc["results"]
            if r.get("mode") == mode
            and r["size"] == size
            and r["backend"] == "torch"
            and r["precision"] == "fp16"
        ]
        if preset:
            rows = [r for r in rows if r.get("preset") == preset] or rows
        return rows[0]

    batch = row("bench_batch_fixed.json", "model")
    return {
        "gpu": "NVIDIA H200 (16-core Intel Xeon host)",
        "graph_fps_batch8": batch["fps"],
        "prep_cpu_ms_fixed": row("bench_model_fixed.json", "model")["cpu_ms_per_frame"],
        "prep_cpu_ms_temporal": row("bench_model_temporal.json", "model")["cpu_ms_per_frame"],
        "pipeline_cpu_ms_fixed": row("bench_pipeline_fixed.json", "pipeline", preset="ultrafast")[
            "cpu_ms_per_frame"
        ],
        "pipeline_model_cpu_ms_fixed": row("bench_pipeline_fixed.json", "model")[
            "cpu_ms_per_frame"
        ],
    }


def paper_estimate(
    transport: list[dict], fleet: list[dict], cameras: int = 1000, fps: int = 30
) -> dict:
    gpu = gpu_figures()
    frames = cameras * fps
    same = {r["variant"]: r for r in transport if r["where"] == "same node"}
    across = {r["variant"]: r for r in transport if r["where"] == "across nodes"}
    chosen = "frame by value, state by reference"
    serve = next(r for r in fleet if not r["ray"])
    ray_one = next(r for r in fleet if r["ray"] and r["max_batch"] == 1)
    per_call = max(ray_one["cpu_ms_per_frame_net"] - serve["cpu_ms_per_frame_net"], 0.0)
    codec = gpu["pipeline_cpu_ms_fixed"] - gpu["pipeline_model_cpu_ms_fixed"]
    utilization = 0.7
    gpus = frames / (gpu["graph_fps_batch8"] * utilization)
    cores = {
        "decode + encode (x264 ultrafast), per camera node": frames * codec / 1000,
        "per-stream work around the network (fixed model), on GPU nodes": frames
        * gpu["prep_cpu_ms_fixed"]
        / 1000,
        "engine: calls (measured per frame, small frames)": frames * per_call / 1000,
        "engine: moving 1080p frames and states, same node": frames
        * same[chosen]["cpu_ms_per_call"]
        / 1000,
    }
    network_gbit = frames * across[chosen]["bytes_between_nodes"] * 8 / 1e9
    return {
        "cameras": cameras,
        "fps": fps,
        "frames_per_s": frames,
        "inputs": gpu
        | {
            "engine_call_cpu_ms": round(per_call, 3),
            "transport_cpu_ms_same_node": same[chosen]["cpu_ms_per_call"],
            "transport_cpu_ms_across": across[chosen]["cpu_ms_per_call"],
            "codec_cpu_ms": round(codec, 1),
        },
        "gpus_h200_at_70pct": round(gpus, 1),
        "cpu_cores": {k: round(v) for k, v in cores.items()},
        "network_gbit_s_if_replicas_on_other_nodes": round(network_gbit),
        "state_store_gb_per_1000_cameras": round(np.prod(STATE_1080P) * 4 * cameras / 1e9, 1),
        "temporal_model_prep_cores": round(frames * gpu["prep_cpu_ms_temporal"] / 1000),
    }


# -- report -------------------------------------------------------------------------------------
def to_markdown(doc: dict) -> str:
    m, load = doc["machine"], doc["load"]
    lines = [
        "# serve on a Ray cluster, simulated on one machine",
        "",
        f"Machine: {cpu_description(m)}; Ray {doc['ray_version']}; commit "
        f"{m['git_commit']}. Load average {load['start']} at the start, {load['end']} at the "
        "end"
        + (
            " — **taken under load** (other work shared the cores): CPU-time figures hold, "
            "wall times and frame rates are pessimistic."
            if max(load.values()) > 1
            else "."
        ),
        f"Cluster: a head and three nodes on 127.0.0.1 (two camera nodes, one denoiser node), "
        f"object store {NODE_STORE >> 20} MiB each. Fleet: {doc['args']['cameras']} `demo` "
        f"cameras {doc['args']['size']} at {doc['args']['fps']:g} fps, "
        f"{doc['args']['per_worker']} per stream worker, torch `fixed` at strength 0 (the "
        "engine's cost, not the network's).",
        "",
        "## Moving a 1080p frame (6.2 MB) and a temporal state (50 MB) per call",
        "",
        "| replica | variant | wall p50 ms | CPU ms per call (all processes) "
        "| bytes between nodes |",
        "|---|---|---:|---:|---:|",
    ]
    for r in doc["transport"]:
        lines.append(
            f"| {r['where']} | {r['variant']} | {r['wall_ms_p50']} | "
            f"{r['cpu_ms_per_call']} | {r['bytes_between_nodes'] / 1e6:.1f} MB |"
        )
    lines += [
        "",
        "## The engine's cost per frame",
        "",
        "| run | cameras | max batch | fps total | min fps per camera | CPU ms per frame | "
        "same, less the idle cluster | cores busy | e2e p50 ms (median camera) | drops |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["fleet"]:
        lines.append(
            f"| {r['label']} | {r['cameras']} | {r['max_batch']} | {r['fps_total']} | "
            f"{r['fps_per_camera_min']} | {r['cpu_ms_per_frame']} | "
            f"{r['cpu_ms_per_frame_net']} | {r['cpu_cores_busy']} | "
            f"{r['e2e_p50_ms_median']} | {r['drops']} |"
        )
    lines.append(
        f"\nThe idle cluster (no serve running) kept {doc['idle_cluster_cores']} cores busy; "
        "the in-process run counts the serve process only."
    )
    failure = next((r["failure"] for r in doc["fleet"] if "failure" in r), None)
    if failure:
        lines += [
            "",
            "## A camera node dies",
            "",
            f"{failure['node_cameras']} cameras ran on the node that was killed, "
            f"{failure['other_cameras']} on the other. Their cameras were live again on the "
            f"other node **{failure['recovery_s']} s** after the kill (median outage "
            f"{failure['outage_s_median']} s: about {failure['frames_lost_per_camera_median']} "
            f"frames lost per camera, {failure['frames_lost_total']} in all; Ray's default "
            "failure detection, about 15 s, is most of it). The other cameras kept at least "
            f"{failure['others_min_fps_per_camera']} fps each in every {WINDOW_S:g} s window "
            f"meanwhile (source {doc['args']['fps']:g} fps).",
            "",
            "![frames per second of the cameras of each node around the failure](ray_fleet.png)",
        ]
    e = doc["estimate"]
    lines += [
        "",
        f"## Paper estimate: {e['cameras']:,} cameras at 1080p{e['fps']}",
        "",
        "Built from the figures above and from the H200 figures measured earlier "
        "(`benchmarks/results/gpu/`: torch fp16, model `fixed`); no GPU was used for this run.",
        "",
        f"* **GPUs**: the network alone at batch 8 runs {e['inputs']['graph_fps_batch8']:.0f} "
        f"1080p frames/s on one H200; {e['frames_per_s']:,} frames/s at 70 % occupancy need "
        f"**{e['gpus_h200_at_70pct']:.0f} H200**.",
    ]
    for what, cores in e["cpu_cores"].items():
        lines.append(f"* CPU, {what}: **{cores:,} cores** (of the 16-core Xeon kind)")
    lines += [
        f"* With the `temporal` model the per-stream work (dense optical flow on the CPU) "
        f"would need {e['temporal_model_prep_cores']:,} cores instead.",
        f"* **Network**: raw RGB frames to a replica on another node and back: "
        f"{e['network_gbit_s_if_replicas_on_other_nodes']:,} Gbit/s in all — run each camera's "
        "stream worker on the node of the replica that serves it where the nodes have the "
        "cores, otherwise plan the NICs for it.",
        f"* **Object store**: the cameras' states (by reference, on the replicas' nodes): "
        f"{e['state_store_gb_per_1000_cameras']} GB per 1,000 cameras.",
    ]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    failure = next((r["failure"] for r in doc["fleet"] if "failure" in r), None)
    if not failure:
        return
    timeline = failure["timeline"]
    moved = set(failure["moved"])
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, names, colour in (
        ("cameras of the killed node", moved, "tab:red"),
        ("the other cameras", None, "tab:blue"),
    ):
        xs, ys = [], []
        for t0, a in timeline:
            later = [(u, s) for u, s in timeline if u >= t0 + WINDOW_S]
            if not later:
                break
            t1, b = later[0]
            members = [n for n in a if (n in moved) == (names is not None)]
            rate = sum(max(b[n] - a[n], 0) for n in members) / (t1 - t0) / max(len(members), 1)
            xs.append(t0)
            ys.append(rate)
        ax.plot(xs, ys, label=label, color=colour)
    ax.axvline(0, color="grey", linestyle="--", label="node killed")
    ax.set_xlabel("seconds since the node was killed")
    ax.set_ylabel("frames out per second, per camera")
    ax.set_title("serve --ray: a camera node dies")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    args = parse_args()
    import ray

    def log(text: str) -> None:
        print(text, flush=True)

    load_start = round(os.getloadavg()[0], 2)
    machine = machine_record()
    cluster, nodes = start_cluster()
    work = Path(tempfile.mkdtemp(prefix="ray_fleet_"))
    try:
        ray.init(address=cluster.address, logging_level="WARNING", namespace="bench")
        transport = measure_transport(nodes, args.rounds, log)
        ray.shutdown()
        time.sleep(5)  # the transport's actors gone
        idle0, t0 = cpu_by_pid(), time.monotonic()
        time.sleep(15)
        idle = round(cpu_since(idle0) / (time.monotonic() - t0), 3)
        fleet = [
            run_fleet(args, work, "in-process serve", None, 1, log=log),
            run_fleet(args, work, "serve --ray", cluster.address, 1, idle, log=log),
            run_fleet(
                args,
                work,
                "serve --ray, batches",
                cluster.address,
                args.per_worker,
                idle,
                kill=nodes["a"],
                log=log,
            ),
        ]
    finally:
        cluster.shutdown()
    doc = {
        "args": vars(args),
        "machine": machine,
        "ray_version": ray.__version__,
        "load": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "transport": transport,
        "idle_cluster_cores": idle,
        "fleet": fleet,
    }
    doc["estimate"] = paper_estimate(transport, fleet)
    stem = RESULTS / args.out
    write_report(stem, doc, to_markdown(doc))
    plot(doc, stem.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
