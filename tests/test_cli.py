"""CLI parsing, config merging and usage errors (exit 2, one line, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamdenoise import __version__
from streamdenoise.cli import build_parser, main
from streamdenoise.commands.run import build_config
from streamdenoise.runtime import choose_backend
from streamdenoise.settings import default_output


def exit_code_of(argv: list[str]) -> int:
    """main()'s exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def config_for(*argv: str):
    args = build_parser().parse_args(["run", *argv])
    return build_config(args)


def test_version_is_fast_and_exact():
    out = subprocess.run(
        [sys.executable, "-m", "streamdenoise", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    assert out.stdout.strip() == f"streamdenoise {__version__}"


def test_flags_fill_the_config(tmp_path, test_backend):
    config = config_for(
        "demo", "-o", "a.mp4", "-o", "null", "--backend", test_backend, "--precision", "bf16",
        "--strength", "0.5", "--policy", "latest", "--size", "640x360", "--fps", "25",
        "--compare", "--max-frames", "10", "--duration", "2.5", "--stats-json", "s.json",
        "--queue-size", "3", "--timeout", "4", "--reconnect-max", "2", "--bitrate", "2.5M",
        "--gop", "50", "--bind", "0.0.0.0", "--preset", "superfast", "--crf", "23", "--quiet",
    )  # fmt: skip
    assert config.outputs == ["a.mp4", "null"]
    assert (config.backend, config.precision, config.strength) == (test_backend, "bf16", 0.5)
    assert config.policy == "latest" and config.queue_size == 3
    assert config.source_options.size == (640, 360) and config.source_options.fps == 25
    assert config.source_options.timeout_s == 4 and config.source_options.reconnect_max == 2
    assert config.sink_options.bitrate == 2_500_000 and config.sink_options.gop == 50
    assert config.sink_options.bind == "0.0.0.0" and config.sink_options.compare
    assert (config.sink_options.preset, config.sink_options.crf) == ("superfast", 23)
    assert (config.max_frames, config.duration) == (10, 2.5)
    assert config.stats_json == Path("s.json") and config.status is False


def test_yaml_config_with_flags_winning(tmp_path, test_backend):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"source: demo\noutputs: [x.mkv, null]\nbackend: {test_backend}\nstrength: 2\n"
        "max-frames: 7\nsize: 320x240\n"
    )
    config = config_for("--config", str(cfg), "--strength", "0.25", "-o", "y.mp4")
    assert config.source == "demo"
    assert config.outputs == ["y.mp4"]  # flag wins
    assert config.strength == 0.25  # flag wins
    assert config.max_frames == 7 and config.source_options.size == (320, 240)


def test_default_runtime_is_the_fastest_one_here(monkeypatch):
    import importlib.util

    from streamdenoise import hardware
    from streamdenoise.runtime import fastest_backend

    monkeypatch.setattr(hardware, "has_cuda", lambda: False)
    has_openvino = importlib.util.find_spec("openvino") is not None
    assert fastest_backend() == ("openvino" if has_openvino else "torch")
    assert fastest_backend("cpu", "bf16") == fastest_backend()
    assert fastest_backend(precision="fp16") == "torch"  # fp16 is CUDA: torch says why
    assert fastest_backend("cuda:0") == "torch"
    monkeypatch.setattr(hardware, "has_cuda", lambda: True)
    assert fastest_backend() == "torch"
    assert fastest_backend(precision="fp32") == "torch"
    for cpu_precision in ("bf16", "int8"):  # a GPU present, but these run on the CPU
        assert fastest_backend(precision=cpu_precision) == fastest_backend("cpu")
    assert fastest_backend("cpu") == ("openvino" if has_openvino else "torch")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("demo", "demo_denoised.mp4"),
        ("/videos/holiday clip.mov", "holiday clip_denoised.mp4"),
        ("frames/", "frames_denoised.mp4"),
        ("0", "0_denoised.mp4"),
        ("rtsp://admin:secret@cam.local:554/stream1", "cam.local_554_stream1_denoised.mp4"),
    ],
)
def test_default_output_name(source, expected):
    assert default_output(source) == expected


def test_default_backend_never_random_weights():
    backend, model = choose_backend()
    if backend in ("torch", "openvino"):
        assert model == "auto"  # the trained tiers; the strongest one for files
        from streamdenoise.models.tiers import shipped_ladder

        assert shipped_ladder()[-1].name == "wide-temporal" and shipped_ladder()[-1].path.is_file()
    else:
        assert (backend, model) == ("atadenoise", None)
    # a neural runtime without a model runs auto too; a classical one stays classical
    assert choose_backend("torch") == ("torch", "auto")
    assert choose_backend("torch", "spatial") == ("torch", "spatial")
    assert choose_backend("atadenoise") == ("atadenoise", None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--size", "12x"], "bad size '12x'"),
        (["demo", "--size", "0x10"], "bad size"),
        (["demo", "--strength", "-1"], "bad strength '-1': must be >= 0"),
        (["demo", "--strength", "lots"], "expected a number"),
        (["demo", "--max-frames", "0"], "bad max-frames"),
        (["demo", "--duration", "0"], "bad duration"),
        (["demo", "--fps", "-5"], "bad fps"),
        (["demo", "--bitrate", "fast"], "bad bitrate"),
        (["demo", "--preset", "warp"], "bad preset 'warp': choose from auto, ultrafast"),
        (["demo", "--crf", "-3"], "bad crf '-3': must be >= 0"),
        (["demo", "--crf", "60"], "bad crf '60': must be <= 51"),
        (["demo", "--backend", "nope"], "unknown backend 'nope'"),
        (["demo", "-o", "out.avi"], "unsupported output 'out.avi'"),
        (["demo", "--precision", "int4"], "bad precision 'int4': choose from fp32"),
        (["demo", "--policy", "newest"], "bad policy 'newest'"),
        (["demo", "--config", "/nonexistent/x.yaml"], "cannot read config"),
        ([], "no SOURCE given"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys):
    code = exit_code_of(["run", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--video-share", "1.5"], "bad video-share '1.5': must be <= 1"),
        (["--patch", "50"], "--patch must be a multiple of 16"),
        (["--minutes", "0"], "bad minutes '0': must be > 0"),
    ],
)
def test_train_usage_errors_exit_2_with_one_line(argv, message, capsys):
    assert exit_code_of(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_config_key_is_named(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("source: demo\nstrenght: 2\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert "unknown setting(s) strenght" in capsys.readouterr().err


def test_unsupported_scheme_is_a_usage_error(capsys):
    assert main(["run", "foo://x", "-o", "null", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unsupported source scheme in 'foo://x'" in err


def test_refuses_to_overwrite_the_source_or_write_stats_nowhere(clip, capsys):
    assert exit_code_of(["run", str(clip), "-o", str(clip)]) == 2
    assert "would overwrite the source" in capsys.readouterr().err
    assert exit_code_of(["run", str(clip), "--stats-json", "/nonexistent/dir/s.json"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_devices_lists_backends_cpu_and_versions():
    import json

    out = subprocess.run(
        [sys.executable, "-m", "streamdenoise", "devices", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert {"torch", "atadenoise"} <= set(found["backends"])
    assert found["accelerators"]["cpu"]["cores"] >= 1
    assert "av" in found["versions"] and isinstance(found["cameras"], list)
    # the shipped default model and its cost per 720p frame (budget: 6 GMAC)
    assert 0 < found["models"]["temporal"]["gmac_per_720p_frame"] <= 6
    # optical flow on the host is outside the GMAC; the in-graph search is inside it
    assert found["models"]["temporal"]["host_motion"] is True
    assert found["models"]["temporal-gpu"]["host_motion"] is False
    # what `run` would use: the trained tiers on the fastest runtime here, never an error
    assert found["default_run"]["model"] == "auto" and "error" not in found["default_run"]
    assert found["default_run"]["backend"] in ("torch", "openvino")


def test_device_flag_reaches_the_config_and_bad_values_are_usage_errors(capsys):
    assert config_for("demo", "--device", "CUDA:1").device == "cuda:1"
    assert config_for("demo").device == "auto"
    assert config_for("demo", "--threads", "1").threads == 1 and config_for("demo").threads is None
    assert exit_code_of(["run", "demo", "--threads", "0", "-o", "null"]) == 2
    assert "bad threads '0'" in capsys.readouterr().err
    assert exit_code_of(["run", "demo", "--device", "gpu0", "-o", "null"]) == 2
    err = capsys.readouterr().err
    assert "bad device 'gpu0'" in err and "Traceback" not in err
