"""``streamdenoise bench``: the shape of what it reports (speeds are not asserted)."""

from __future__ import annotations

import json

import pytest

from streamdenoise.cli import main
from streamdenoise.errors import UsageError
from streamdenoise.lab.speed import BenchConfig, parse_backends, parse_sizes, run_bench, to_markdown

FAST = {"seconds": 0.3, "warmup_s": 0.05, "rounds": 2}


def _check_row(row: dict, mode: str) -> None:
    assert row["mode"] == mode
    assert {"backend", "precision", "size", "width", "height", "batch", "fps", "frames"} <= set(row)
    assert row["fps"] > 0 and row["frames"] > 0
    assert set(row["latency_ms"]) >= {"p50", "p99"}
    assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
    assert "vs_torch_fp32" in row and "macs_per_frame" in row
    assert row["cpu_ms_per_frame"] > 0


def test_model_only_json_lists_results_and_unavailable_backends():
    config = BenchConfig(
        backends=["atadenoise", "hqdn3d", "tensorrt"], sizes=[(64, 48), (33, 17)], **FAST
    )
    doc = run_bench(config, log=lambda _: None)
    rows = doc["results"]
    assert {(r["backend"], r["size"]) for r in rows} >= {
        ("atadenoise", "64x48"),
        ("atadenoise", "33x17"),
    }
    for row in rows:
        _check_row(row, "model")
        assert row["precision"] == "uint8"
        assert row["macs_per_frame"] is None  # classical filters have no MAC count
    unavailable = {item["backend"]: item["reason"] for item in doc["unavailable"]}
    assert unavailable.get("tensorrt")
    machine = doc["machine"]
    assert machine["cpu"]["model"] and machine["cpu"]["cores"] >= 1
    assert "versions" in machine and "git_commit" in machine
    json.dumps(doc)  # serialisable as is


def test_markdown_has_a_table_row_per_result_and_the_reasons():
    config = BenchConfig(backends=["atadenoise", "tensorrt"], sizes=[(40, 32)], **FAST)
    doc = run_bench(config, log=lambda _: None)
    text = to_markdown(doc)
    assert "| backend | precision | size | fps | p50 ms | p99 ms |" in text
    assert "| atadenoise | uint8 | 40x32 |" in text
    assert "## Not measured" in text and "- tensorrt" in text


def test_precision_filter_leaves_backends_without_that_precision_listed():
    config = BenchConfig(backends=["atadenoise"], sizes=[(32, 32)], precisions=["bf16"], **FAST)
    doc = run_bench(config, log=lambda _: None)
    assert doc["results"] == []
    assert doc["unavailable"][0]["backend"] == "atadenoise"
    assert "uint8" in doc["unavailable"][0]["reason"]


@pytest.mark.slow
def test_pipeline_mode_reports_end_to_end_rows(tmp_path):
    config = BenchConfig(
        backends=["atadenoise"],
        sizes=[(64, 48)],
        pipeline=True,
        presets=["ultrafast", "veryfast"],
        seconds=1.0,
        warmup_s=0.05,
        rounds=2,
    )
    doc = run_bench(config, log=lambda _: None)
    modes = {r["mode"] for r in doc["results"]}
    assert modes == {"model", "pipeline"}
    pipeline = [r for r in doc["results"] if r["mode"] == "pipeline"]
    for row in pipeline:
        _check_row(row, "pipeline")
        assert row["output"] == "mp4"
    assert sorted(r["x264_preset"] for r in pipeline) == ["ultrafast", "veryfast"]
    assert "| x264 preset |" in to_markdown(doc)


def test_cli_refuses_an_unknown_x264_preset(capsys):
    code = main(["bench", "--backends", "identity", "--pipeline", "--preset", "turbo"])
    assert code == 2
    assert "turbo" in capsys.readouterr().err


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    out_json, out_md = tmp_path / "b.json", tmp_path / "b.md"
    code = main(
        [
            "bench",
            "--backends",
            "atadenoise,tensorrt",
            "--sizes",
            "48x32",
            "--seconds",
            "0.2",
            "--warmup",
            "0.05",
            "--rounds",
            "1",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ]
    )
    assert code == 0
    doc = json.loads(out_json.read_text())
    assert doc["results"][0]["backend"] == "atadenoise"
    assert out_md.read_text().startswith("# streamdenoise bench")
    assert "atadenoise" in capsys.readouterr().out


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError):
        parse_sizes("1280by720")
    with pytest.raises(UsageError):
        parse_backends("torch,nosuch")
    assert parse_sizes("640x360,33x17") == [(640, 360), (33, 17)]
    assert "onnxruntime" in parse_backends("all")
    assert main(["bench", "--backends", "nosuch"]) == 2


@pytest.fixture(scope="module")
def untrained_weights(tmp_path_factory):
    """A freshly initialised network: speeds and schema only (never shipped, never judged)."""
    import torch

    from streamdenoise.models.nets import NetConfig, build_net
    from streamdenoise.models.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "benchnet.pt"
    save_weights(path, "benchnet", build_net(NetConfig()), {"note": "bench tests only"})
    return path


@pytest.mark.parametrize("batch", [1, 2])
def test_neural_rows_carry_macs_and_the_ratio_to_torch_fp32(
    untrained_weights, monkeypatch, tmp_path, batch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # on-the-fly ONNX export goes here
    monkeypatch.setattr("streamdenoise.artifacts.PACKAGED", tmp_path / "no-engines")
    config = BenchConfig(
        backends=["torch", "onnxruntime"],
        sizes=[(40, 24)],
        precisions=["fp32"],
        model=str(untrained_weights),
        batch=batch,
        **FAST,
    )
    doc = run_bench(config, log=lambda _: None)
    rows = {r["backend"]: r for r in doc["results"]}
    assert set(rows) == {"torch", "onnxruntime"}
    for row in rows.values():
        _check_row(row, "model")
        assert row["batch"] == batch
        assert row["macs_per_frame"] == doc["macs_per_frame"]["40x24"] > 0
    assert rows["torch"]["vs_torch_fp32"] == 1.0
    assert rows["onnxruntime"]["vs_torch_fp32"] > 0
