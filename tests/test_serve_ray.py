"""``serve --ray``: the same config file on a real multi-node Ray cluster on 127.0.0.1.

The cluster is Ray's own (``ray.cluster_utils.Cluster``): a head and three nodes, each with
its own raylet and object store, told apart by custom resources — ``cam`` on the camera
nodes ``a`` and ``b``, ``denoise`` on the denoiser node. One camera is a GStreamer RTSP
server with a password; the others are looped files. A node is stopped the way a machine dies
(its raylet and every process under it SIGKILLed). Ray's failure detection is shortened for
the test (a missed health check every 0.5 s, dead after 4; Ray's default is 3 s and 5).

The cluster tests need Ray (``pip install 'streamdenoise[ray]'``) and are skipped, with that
reason, only where it is not installed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from importlib.util import find_spec

import pytest
import yaml
from helpers import REPO_ROOT, cli_command, fetch, make_clip, probe, prometheus, run_cli, wait_for
from rtsp_control import RtspServer, free_port, gst_rtsp_missing

needs_ray = pytest.mark.skipif(
    find_spec("ray") is None, reason="ray is not installed: pip install 'streamdenoise[ray]'"
)

FPS = 5
PASSWORD = "hunter2-secret"
#: Time the cameras of a dead node get to be live again on another node (measured: 4-8 s on
#: a busy 2-core machine; most of it Ray's detection of the dead node).
RECOVERY_BUDGET_S = 40
HEALTH_CHECKS = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
NODE_STORE = 100 * 2**20


# -- without a cluster ------------------------------------------------------------------------
def test_check_lists_the_problems_of_a_ray_section(tmp_path, clip):
    config = tmp_path / "c.yaml"
    config.write_text(
        "ray: {address: 'ray://head:10001', replicas: 0, gpus_per_replica: -1,\n"
        "      camera_resources: {CPU: 2}, call_timeout: soon, colour: blue}\n"
        f"cameras:\n  a: {{source: {clip}, backend: torch, model: fixed, outputs: ['null']}}\n"
    )
    done = run_cli("serve", "--check", config)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    for expected in ("Ray Client addresses are not supported", "bad replicas 0",
                     "bad gpus_per_replica -1", "CPU has its own setting", "bad call_timeout",
                     "unknown setting(s) colour"):  # fmt: skip
        assert any(expected in line for line in lines), (expected, lines)
    assert len(lines) == 6 and "Traceback" not in done.stderr


def test_without_ray_installed_one_line_and_exit_2(tmp_path, clip):
    """Ray made unimportable (as where it is not installed): one line, exit 2."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"cameras:\n  a: {{source: {clip}, backend: torch, model: fixed, outputs: ['null']}}\n"
    )
    launcher = (
        "import sys; sys.modules['ray'] = None\n"
        "from streamdenoise.cli import main; sys.exit(main())"
    )
    for extra in (["--ray", "127.0.0.1:6379"], ["--check", "--ray", "auto"]):
        done = subprocess.run(
            [sys.executable, "-c", launcher, "serve", str(config), *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            "streamdenoise: error: --ray needs Ray: pip install 'streamdenoise[ray]'"
            if "--check" not in extra
            else "streamdenoise: --ray needs Ray: pip install 'streamdenoise[ray]'"
        ]


@needs_ray
def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path, clip):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"cameras:\n  a: {{source: {clip}, backend: torch, model: fixed, outputs: ['null']}}\n"
    )
    with socket_refusing() as port:
        done = run_cli("serve", config, "--ray", f"127.0.0.1:{port}", timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"streamdenoise: error: cannot reach the Ray cluster at 127.0.0.1:{port}: "
        "Connection refused"
    ]


class socket_refusing:
    """A port on 127.0.0.1 bound but not listening: connections are refused."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


def test_the_kuberay_manifest_asks_for_what_matters(tmp_path):
    """deploy/kuberay/raycluster.yaml: valid YAML, a RayCluster whose camera and GPU worker
    groups request CPU, memory and (GPU group) nvidia.com/gpu, with /dev/shm sized for the
    object store, and the serve config it mounts (a Secret: camera passwords) checks out."""
    docs = list(yaml.safe_load_all((REPO_ROOT / "deploy/kuberay/raycluster.yaml").read_text()))
    cluster = next(d for d in docs if d and d.get("kind") == "RayCluster")
    assert cluster["apiVersion"].startswith("ray.io/")
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert {"cameras", "gpu"} <= set(groups)
    for name, group in groups.items():
        pod = group["template"]["spec"]
        (container,) = pod["containers"]
        requests = container["resources"]["requests"]
        assert "cpu" in requests and "memory" in requests, name
        assert group["rayStartParams"].get("object-store-memory"), name
        shm = [v for v in pod["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"]
        assert shm, f"{name}: no /dev/shm volume for the object store"
    assert (
        "nvidia.com/gpu"
        in groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    )
    secret = next(d for d in docs if d and d.get("kind") == "Secret")
    site = yaml.safe_load(secret["stringData"]["serve.yaml"])
    assert site["ray"]["camera_resources"] == {"camera_slot": 1}
    assert "camera_slot" in groups["cameras"]["rayStartParams"]["resources"]
    assert "camera_slot" not in groups["gpu"]["rayStartParams"].get("resources", "")
    config = tmp_path / "serve.yaml"
    config.write_text(
        secret["stringData"]["serve.yaml"].replace(
            "/etc/streamdenoise/token", str(tmp_path / "token")
        )
    )
    (tmp_path / "token").write_text(secret["stringData"]["token"])
    done = run_cli("serve", "--check", config)
    assert done.returncode == 0 or "needs Ray" in done.stderr, done.stderr


# -- on a cluster ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and nodes a, b (cameras) and d (denoisers), all on 127.0.0.1; their processes
    keep ``model: auto``'s calibrations in a temporary folder."""
    if find_spec("ray") is None:
        pytest.skip("ray is not installed: pip install 'streamdenoise[ray]'")
    # Ray maps 127.0.0.1 to the machine's address unless told that this is a local cluster
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    cache_home = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))  # the nodes inherit it
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": NODE_STORE,
                        "include_dashboard": False, "_system_config": HEALTH_CHECKS},
    )  # fmt: skip
    try:
        nodes = {
            name: cluster.add_node(num_cpus=2, object_store_memory=NODE_STORE, resources=res)
            for name, res in (("a", {"cam": 10}), ("b", {"cam": 10}), ("d", {"denoise": 4}))
        }
        yield cluster.address, nodes
    finally:
        cluster.shutdown()
        os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        if cache_home is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = cache_home


def stop_node(node) -> None:
    """The node dies as a machine does: its raylet and every process under it, SIGKILL."""
    import psutil

    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    for process in [raylet, *raylet.children(recursive=True)]:
        process.send_signal(signal.SIGKILL)


@pytest.fixture(scope="module")
def site(cluster, tmp_path_factory):
    """Four cameras recording in 2 s segments, two replicas of the denoiser, on the cluster."""
    reason = gst_rtsp_missing()
    if reason:
        pytest.skip(reason)
    address, nodes = cluster
    root = tmp_path_factory.mktemp("fleet")
    gate = RtspServer(root / "gate", size="160x96", fps=FPS, user="admin", password=PASSWORD)
    gate.start()
    clip = make_clip(root / "clip.mp4", frames=25, size=(160, 96), fps=FPS)
    port = free_port()
    camera = f"{{source: '{clip}'}}"
    pattern = f"{root}/rec/{{camera}}/%H%M%S.mp4"
    lines = [
        f"http: {{port: {port}}}",
        "defaults: {backend: torch, model: fixed, precision: fp32, loop: true, realtime: true,",
        f"           timeout: 3, record: {{segment: 2s, path: '{pattern}'}}}}",
        "ray: {cpus_per_camera: 0.25, camera_resources: {cam: 1}, replicas: 2,",
        "      cpus_per_replica: 0.5, replica_resources: {denoise: 1}, call_timeout: 5s}",
        "cameras:",
        f"  gate: {{source: '{gate.url(user='admin', password=PASSWORD)}'}}",
        f"  yard: {camera}",
        f"  dock: {camera}",
        f"  lobby: {camera}",
    ]
    config = root / "site.yaml"
    config.write_text("\n".join(lines) + "\n")
    log = root / "serve.log"
    with open(log, "w") as err:  # a file, not a pipe: the fleet's log must never block serve
        cli = subprocess.Popen(
            cli_command("serve", config, "--ray", address),
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: fetch(base + "readyz")[0] == 200 or cli.poll() is not None, 180, "ready")
        assert cli.poll() is None, log.read_text()[-3000:]
        yield {"base": base, "cli": cli, "log": log, "root": root, "nodes": nodes, "config": config,
               "address": address}  # fmt: skip
    finally:
        if cli.poll() is None:
            cli.send_signal(signal.SIGTERM)
            cli.wait(timeout=90)
        gate.stop()


def cameras(base: str) -> dict:
    return {c["name"]: c for c in json.loads(fetch(base + "api/cameras")[1])["cameras"]}


def denoisers(base: str) -> list[dict]:
    return json.loads(fetch(base + "api/cameras")[1])["denoisers"]


@needs_ray
def test_cameras_spread_over_the_nodes_denoisers_on_theirs(site):
    doc = json.loads(fetch(site["base"] + "api/cameras")[1])
    nodes = {name: node.node_id[:8] for name, node in site["nodes"].items()}
    placed = {c["name"]: c["node"] for c in doc["cameras"]}
    assert set(placed.values()) == {nodes["a"], nodes["b"]}, placed
    assert all(c["state"] == "live" for c in doc["cameras"]), doc["cameras"]
    replicas = doc["denoisers"]
    assert [r["replica"] for r in replicas] == [0, 1]
    assert {r["node"] for r in replicas} == {nodes["d"]} and all(r["up"] for r in replicas)
    # ready means every camera delivers frames; the denoised ones follow
    wait_for(lambda: sum(r["frames"] for r in denoisers(site["base"])) > 0, 60, "denoised frames")
    import ray

    ray.init(address=site["address"], namespace="observer", logging_level="WARNING")
    try:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    finally:
        ray.shutdown()
    assert sorted(names) == sorted(
        ["cameras gate", "cameras yard", "cameras dock", "cameras lobby",
         "denoiser torch/fixed/fp32#0", "denoiser torch/fixed/fp32#1"]
    )  # fmt: skip
    text = json.dumps(doc) + fetch(site["base"] + "metrics")[1]
    assert PASSWORD not in text and "admin:" not in text


@needs_ray
def test_prometheus_scrapes_every_camera_of_the_fleet_from_the_head(site, tmp_path):
    port = site["base"].rsplit(":", 1)[1].strip("/")
    job = f"  - job_name: fleet\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    with prometheus(tmp_path, job) as query:
        growing = wait_for(
            lambda: (
                len(r := query("increase(streamdenoise_camera_frames_out_total[5s]) > 0")) == 4
                and r
            ),
            60,
            "four cameras counting in Prometheus",
        )
        assert {s["metric"]["camera"] for s in growing} == {"gate", "yard", "dock", "lobby"}
        replicas = wait_for(lambda: query("streamdenoise_denoiser_frames_total > 0"), 30, "x")
        assert sorted(s["metric"]["replica"] for s in replicas) == ["0", "1"]
        assert len(query("streamdenoise_actor_up == 1")) == 6
        assert query('streamdenoise_camera_state{state="live"} == 1')
    assert PASSWORD not in fetch(site["base"] + "metrics")[1]


def accounted(camera: dict) -> int:
    """Frames a camera captured that are neither written, dropped (counted) nor failed
    (counted): at most what its queues hold."""
    drops = sum(camera["drops"].values())
    return camera["frames_in"] - camera["frames_out"] - drops - camera["denoise_failures"]


#: Every camera that keeps going gets frames out in every window this long (the head's view
#: is refreshed once a second; the cameras deliver 5 frames a second).
WINDOW_S = 2.5


def rising(base: str, seconds: float, names) -> dict:
    """Samples ``frames_out`` of ``names`` every 0.5 s for ``seconds``; asserts that every
    camera got frames in every window of :data:`WINDOW_S`. Returns the last sample."""
    history: list[tuple[float, dict]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        history.append((time.monotonic(), cameras(base)))
        time.sleep(0.5)
    for name in names:
        points = [(t, doc[name]["frames_out"]) for t, doc in history]
        for t, frames in points:
            later = [f for u, f in points if u >= t + WINDOW_S]
            # the camera's whole status and the denoisers' on failure: where its frames stop
            assert not later or later[0] > frames, (name, points, history[-1][1][name],
                                                    denoisers(base))  # fmt: skip
    return history[-1][1]


@needs_ray
def test_a_replica_dies_and_is_replaced_while_every_camera_keeps_going(site):
    """The cameras on the other replica never stop; those whose replica died lose at most the
    frames of the call in flight (retried on the other replica, or dropped and counted)."""
    base = site["base"]
    (victim, _) = json.loads(fetch(base + "api/cameras")[1])["denoisers"]
    served = {n for n, c in cameras(base).items() if c["replica"] == 0}
    os.kill(victim["pid"], signal.SIGKILL)
    rising(base, 4, {"gate", "yard", "dock", "lobby"} - served)

    def replaced():
        rows = json.loads(fetch(base + "api/cameras")[1])["denoisers"]
        return rows[0]["restarts"] >= 1 and rows[0]["up"] and rows[0]["pid"] != victim["pid"]

    wait_for(replaced, 60, "replica 0 replaced")
    last = rising(base, 3, ("gate", "yard", "dock", "lobby"))
    for camera in last.values():  # nothing vanished uncounted
        assert accounted(camera) <= 8, camera


@needs_ray
def test_a_node_dies_its_cameras_resume_on_another_the_others_never_stop(site):
    base, nodes = site["base"], site["nodes"]
    a, b = nodes["a"].node_id[:8], nodes["b"].node_id[:8]
    before = cameras(base)
    moving = sorted(n for n, c in before.items() if c["node"] == a)
    staying = sorted(n for n, c in before.items() if c["node"] == b)
    assert moving and staying, before
    killed = time.time()
    started = time.monotonic()
    stop_node(nodes["a"])
    rising(base, 3, staying)

    def resumed():
        now = cameras(base)
        return all(now[n]["state"] == "live" and now[n]["node"] == b for n in moving) and now

    after = wait_for(resumed, RECOVERY_BUDGET_S, "the cameras of node a live on node b")
    recovery = time.monotonic() - started
    print(f"cameras {moving} live again on node b {recovery:.1f} s after node a died")
    last = rising(base, 3, [*staying, *moving])
    for name in moving:
        assert after[name]["restarts"] == 1 and last[name]["frames_out"] > 0
    for name in staying:
        assert last[name]["frames_out"] > before[name]["frames_out"] and last[name]["restarts"] == 0
    wait_for(lambda: fetch(base + "readyz")[0] == 200, 30, "ready again")
    site["killed"], site["moved"] = killed, moving


@needs_ray
def test_reload_adds_and_removes_cameras_on_the_cluster(site):
    """Unchanged cameras keep their workers (and counters); lobby goes, porch comes."""
    base, config = site["base"], site["config"]
    before = cameras(base)
    config.write_text(config.read_text().replace("  lobby: ", "  porch: "))
    request = urllib.request.Request(base + "api/reload", method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        result = json.loads(response.read())
    assert result["added"] == ["porch"] and result["removed"] == ["lobby"], result
    assert sorted(result["unchanged"]) == ["dock", "gate", "yard"] and not result["restarted"]
    now = wait_for(lambda: (c := cameras(base)).get("porch", {}).get("state") == "live" and c,
                   60, "porch live")  # fmt: skip
    assert "lobby" not in now and now["yard"]["frames_out"] > before["yard"]["frames_out"]
    assert now["yard"]["restarts"] == before["yard"]["restarts"]


@needs_ray
def test_stopping_finalizes_every_recording_and_no_secret_is_logged(site):
    cli, log = site["cli"], site["log"]
    cli.send_signal(signal.SIGTERM)
    assert cli.wait(timeout=90) == 130
    text = log.read_text()
    assert "stopped; outputs finalized" in text
    assert PASSWORD not in text and "admin:" not in text, text[-3000:]
    for name in ("gate", "yard", "dock", "lobby", "porch"):
        folder = site["root"] / "rec" / name
        segments = sorted(folder.glob("*.mp4"))
        assert segments and not list(folder.glob(".*")), (name, list(folder.iterdir()))
        for segment in segments:
            assert probe(segment).frames > 0  # strict: every frame decodes
        if name in site.get("moved", ()):  # the open segment: what reached the disk, or none
            assert re.search(rf"recording {name}: (salvaged|removed) \S+, cut short", text), text
            assert any(p.stat().st_mtime > site["killed"] + 1 for p in segments)


@needs_ray
def test_auto_on_a_replica_chooses_for_the_cameras_it_serves(cluster, tmp_path):
    """``model: auto`` on a cluster: each replica calibrates for the cameras the head expects it
    to serve (here two stream workers of one camera each on one replica: twice a camera's
    rate, also when the first call comes before the second camera's), sets no CPU aside for
    decoding and encoding (the stream workers do that, on CPUs of their own), and the head
    shows the tier it chose."""
    address, _ = cluster
    clip = make_clip(tmp_path / "clip.mp4", frames=20, size=(96, 64), fps=FPS)
    port = free_port()
    camera = f"{{source: '{clip}'}}"
    lines = [
        f"http: {{port: {port}}}",
        "defaults: {backend: torch, precision: fp32, loop: true, realtime: true,",
        "           outputs: ['null']}",
        "ray: {cpus_per_camera: 0.25, camera_resources: {cam: 1}, cameras_per_worker: 1,",
        "      replicas: 1, cpus_per_replica: 0.5, replica_resources: {denoise: 1}}",
        "cameras:",
        f"  porch: {camera}",
        f"  shed: {camera}",
    ]
    config = tmp_path / "auto.yaml"
    config.write_text("\n".join(lines) + "\n")
    log = tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}/"
    with open(log, "w") as err:
        cli = subprocess.Popen(cli_command("serve", config, "--ray", address),
                               stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip

    def chosen():
        rows = json.loads(fetch(base + "api/cameras")[1])["denoisers"]
        return rows if rows and "source_fps" in rows[0] else None

    try:
        wait_for(lambda: cli.poll() is not None or fetch(base + "readyz")[0] == 200, 180, "ready")
        assert cli.poll() is None, log.read_text()[-3000:]
        (replica,) = wait_for(chosen, 120, "a tier chosen")
        assert replica["auto"] is True and replica["model"] == replica["tier"] != "auto"
        assert replica["source_fps"] == 2 * FPS, replica
        assert replica["x264_encoders"] == [] and replica["codec_ms_per_frame"] == 0, replica
        # a reload removes a camera: the replica chooses for the one left once its worker
        # stops calling
        config.write_text("\n".join(lines[:-1]) + "\n")
        request = urllib.request.Request(base + "api/reload", method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            assert json.loads(response.read())["removed"] == ["shed"]
        wait_for(lambda: chosen()[0]["source_fps"] == FPS, 60, "the rate of one camera")
    finally:
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=90) == 130
    tier = re.escape(replica["tier"])
    assert re.search(rf"auto: tier {tier}/fp32 for {2 * FPS} fps of 96x64", log.read_text())
