"""Fine-tuning from a password-protected RTSP camera (a real GStreamer server): the
password and a token-like query parameter reach neither the weights file nor the report."""

from __future__ import annotations

import json

from helpers import run_cli

from streamdenoise.models.weights import load_weights


def test_camera_credentials_never_reach_the_weights(tmp_path, rtsp_server_factory):
    server = rtsp_server_factory(user="admin", password="hunter2-secret")
    url = server.url(user="admin", password="hunter2-secret") + "?token=tok-sekrit-9"
    out, report = tmp_path / "cam.pt", tmp_path / "report.json"
    done = run_cli(
        "finetune", url, "--collect-seconds", "3", "--max-frames", "40", "--model", "spatial",
        "--minutes", "0.05", "--patch", "32", "--batch", "1",
        "-o", str(out), "--report", str(report),
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for secret in ("hunter2-secret", "tok-sekrit-9", "admin"):
        assert secret.encode() not in out.read_bytes()
        assert secret not in report.read_text()
        assert secret not in done.stdout + done.stderr
    meta = load_weights(out)[1]["metadata"]
    assert meta["finetune"]["source"].startswith("rtsp://***@127.0.0.1:")
    assert json.loads(report.read_text())["finetune"]["frames_seen"] > 10
