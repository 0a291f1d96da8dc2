"""Evaluation: metrics, data loading, the identity baseline's known PSNR, the CLI report."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamdenoise.cli import main
from streamdenoise.lab.image_metrics import flicker, psnr, ssim
from streamdenoise.lab.quality import (
    BackendSpec,
    evaluate,
    load_sequences,
    make_noisy,
    markdown,
)


def write_sequences(root: Path, count: int = 2, frames: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for s in range(count):
        folder = root / f"seq{s}"
        folder.mkdir(parents=True)
        base = rng.integers(40, 200, (32, 48, 3)).astype(np.uint8)
        base = cv2.GaussianBlur(base, (5, 5), 2)
        for t in range(frames):
            frame = np.roll(base, t, axis=1)
            cv2.imwrite(str(folder / f"{t:05d}.png"), frame[:, :, ::-1])
    return root


def test_metrics_basics():
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110
    assert psnr(a, a) > 90
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / (100 / 1200)), rel=1e-6)
    assert ssim(a, a) == pytest.approx(1.0)
    assert flicker([a, a], [a, a]) == 0.0
    assert flicker([a, b], [a, a]) > 0


def test_identity_backend_gives_the_noisy_psnr(tmp_path):
    data = write_sequences(tmp_path / "seqs")
    seqs = load_sequences(data)
    assert [s.name for s in seqs] == ["seq0", "seq1"] and len(seqs[0].frames) == 3
    report = evaluate([data], [20.0], [BackendSpec.parse("identity")], seed=0)
    (row,) = report["results"]
    expected = np.mean(
        [
            np.mean(
                [
                    psnr(n, c)
                    for n, c in zip(make_noisy(s, i, 20.0, "awgn", 0)[0], s.frames, strict=True)
                ]
            )
            for i, s in enumerate(seqs)
        ]
    )
    assert row["psnr"] == pytest.approx(expected, abs=1e-3)
    assert row["psnr"] == pytest.approx(20 * np.log10(255 / 20), abs=0.4)
    assert {"backend", "sigma", "psnr", "ssim", "flicker", "fps"} <= row.keys()
    assert "identity" in markdown(report)


def test_image_folder_and_video_file_load(tmp_path, clip):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"{i}.png"), np.full((16, 16, 3), 80 + i, np.uint8))
    seqs = load_sequences(images)
    assert len(seqs) == 2 and all(len(s.frames) == 1 for s in seqs)
    (video,) = load_sequences(clip, max_frames=4)
    assert len(video.frames) == 4 and video.frames[0].ndim == 3


def test_still_holds_each_image_with_fresh_noise_in_every_frame(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.full((16, 16, 3), 80, np.uint8))
    (seq,) = load_sequences(images, still=5)
    assert len(seq.frames) == 5 and all(np.array_equal(f, seq.frames[0]) for f in seq.frames)
    noisy, _ = make_noisy(seq, 0, 20.0, "awgn", 0)
    assert not np.array_equal(noisy[0], noisy[1])
    args = [
        "eval",
        "--data",
        str(images),
        "--still",
        "5",
        "--sigma",
        "20",
        "--backends",
        "identity",
    ]
    out = tmp_path / "r.json"
    assert main([*args, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["results"][0]["dataset"] == "imgs (still ×5)"
    assert main([*args[:-4], "--still", "0"]) == 2


def test_eval_cli_writes_json_and_markdown(tmp_path):
    data = write_sequences(tmp_path / "seqs", count=1)
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    args = ["eval", "--data", str(data), "--sigma", "10,30", "--backends", "identity"]
    assert main([*args, "--json", str(out_json), "--markdown", str(out_md)]) == 0
    report = json.loads(out_json.read_text())
    assert [r["sigma"] for r in report["results"]] == [10.0, 30.0]
    assert report["results"][0]["psnr"] > report["results"][1]["psnr"]
    assert "σ=10" in out_md.read_text()
    # the fps column and int8 rows depend on the machine: the report names it
    assert report["machine"]["cpu"]["cores"] >= 1
    assert "Machine of the latest run:" in out_md.read_text()


def test_eval_rejects_bad_sigma(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path), "--sigma", "abc"]) == 2
    assert "sigma" in capsys.readouterr().err


def test_table_marks_a_baseline_that_is_not_above_its_noisy_input():
    def row(backend: str, psnr_db: float) -> dict:
        return {"dataset": "d", "backend": backend, "sigma": 10.0, "psnr": psnr_db,
                "ssim": 0.5, "flicker": 0.0, "fps": 1.0}  # fmt: skip

    report = {"noise": "awgn", "protocol": "quantized", "seed": 0}
    report["results"] = [row("identity", 28.18), row("broken", 27.26), row("good", 31.0)]
    table = markdown(report)
    assert "| broken | 27.26 / 0.500 ↓ |" in table
    assert "| good | 31.00 / 0.500 |" in table
    assert "| identity | 28.18 / 0.500 |" in table


def test_eval_under_a_kernel_cap_says_so_and_is_not_merged_with_an_uncapped_run(
    tmp_path, monkeypatch, capsys
):
    data = write_sequences(tmp_path / "seqs", count=1)
    plain, capped = tmp_path / "plain.json", tmp_path / "capped.json"
    args = ["eval", "--data", str(data), "--sigma", "10", "--backends", "identity"]
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # the plain run: no cap
    assert main([*args, "--json", str(plain)]) == 0
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    out_md = tmp_path / "capped.md"
    assert main([*args, "--json", str(capped), "--markdown", str(out_md)]) == 0
    report = json.loads(capped.read_text())
    assert report["isa_cap"] == "AVX2"
    assert report["commands"][0].startswith("ONEDNN_MAX_CPU_ISA=AVX2 streamdenoise eval --data")
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in out_md.read_text()
    capsys.readouterr()
    assert main([*args, "--merge", str(plain)]) == 2
    assert "ONEDNN_MAX_CPU_ISA" in capsys.readouterr().err
    # checked before anything is measured: nothing is written, nothing printed but the line
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    mixed = tmp_path / "mixed.json"
    realistic = [*args, "--noise", "realistic", "--json", str(mixed)]
    assert main([*realistic, "--merge", str(plain)]) == 2
    err = capsys.readouterr().err
    assert "another --noise" in err and "PSNR" not in err and not mixed.exists()
    assert main([*args, "--merge", str(tmp_path / "missing.json")]) == 2
    assert "--merge: cannot read" in capsys.readouterr().err


def test_merged_rows_of_another_cpu_say_their_fps_was_measured_there(tmp_path):
    data = write_sequences(tmp_path / "seqs", count=1)
    earlier, merged, text = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "b.md"
    args = ["eval", "--data", str(data), "--sigma", "10"]
    assert main([*args, "--backends", "identity", "--json", str(earlier)]) == 0
    report = json.loads(earlier.read_text())  # as if it had run on another machine
    report["machine"]["cpu"] = {"model": "Other CPU", "cores": 64, "flags": ["avx512f"]}
    earlier.write_text(json.dumps(report))
    extra = ["--merge", str(earlier), "--json", str(merged), "--markdown", str(text)]
    assert main([*args, "--backends", "hqdn3d", *extra]) == 0
    rows = {r["backend"]: r for r in json.loads(merged.read_text())["results"]}
    assert rows["identity"]["fps_machine"] == "Other CPU, 64 logical cores (avx512f)"
    assert "fps_machine" not in rows["hqdn3d"]
    table = text.read_text()
    assert "‡1 fps on another machine: Other CPU, 64 logical cores (avx512f)." in table
    identity = next(line for line in table.splitlines() if line.startswith("| identity |"))
    hqdn3d = next(line for line in table.splitlines() if line.startswith("| hqdn3d |"))
    assert identity.endswith(" ‡1 |") and "‡" not in hqdn3d
    # a row measured partly here: its fps is this machine's alone, unmarked
    report = json.loads(merged.read_text())
    other = next(r for r in report["results"] if r["backend"] == "identity")
    other["fps"] = 1e9  # an absurd speed of the other machine: must not be averaged in
    merged.write_text(json.dumps(report))
    again = ["--merge", str(merged), "--markdown", str(text)]
    assert (
        main(["eval", "--data", str(data), "--sigma", "20", "--backends", "identity", *again]) == 0
    )
    identity = next(
        line for line in text.read_text().splitlines() if line.startswith("| identity |")
    )
    fps = identity.rstrip(" |").rsplit("|", 1)[1]
    assert "‡" not in identity and float(fps) < 1e8


def test_two_pass_rows_score_the_model_forward_and_backward(tmp_path, capsys):
    """``MODEL+two-pass`` is a row of its own, scored on every frame as ``run --two-pass``
    writes them; the float protocol feeds it the 8-bit frames; a bad suffix is one line."""
    data = write_sequences(tmp_path / "seqs", count=1, frames=14)
    specs = [BackendSpec.parse(s) for s in ("wide-temporal", "wide-temporal+two-pass")]
    assert specs[1].two_pass and specs[1].model == "wide-temporal" and specs[1].name == "torch"
    for protocol in ("quantized", "float"):
        one, two = evaluate([data], [25.0], specs, protocol=protocol)["results"]
        assert two["backend"] == "wide-temporal+two-pass" and two["frames"] == one["frames"] == 14
        assert two["input"] == "8-bit" and two["psnr"] > one["psnr"] - 1.0
    assert main(["eval", "--data", str(data), "--backends", "wide+three-pass"]) == 2
    assert "unknown backend suffix +three-pass" in capsys.readouterr().err
