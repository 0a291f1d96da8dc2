"""``--model auto``: tiers read from weights files, calibration cached per machine, and
adaptation driven by a backend that really is slow (it computes extra forward passes), never by
a stand-in clock."""

from __future__ import annotations

import functools
import json
import logging
import math
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import HEAVY_BACKEND, make_clip, run_cli

from streamdenoise import hardware
from streamdenoise.auto import AutoDenoiser
from streamdenoise.auto import calibration as cal
from streamdenoise.auto.adapt import AdaptRules, OveruseDetector
from streamdenoise.auto.calibration import CACHE_FILE, CalibrationCache, machine_key, tier_key
from streamdenoise.auto.denoiser import TARGET_USAGE, Rung
from streamdenoise.backends import BACKENDS, create_backend
from streamdenoise.models import motion
from streamdenoise.models.macs import count_macs
from streamdenoise.models.nets import NetConfig, build_net
from streamdenoise.models.tiers import QUALITY_METRIC, discover_tiers, ladder, load_tier
from streamdenoise.models.weights import save_weights
from streamdenoise.settings import AUTO_PRESET_STEPS
from streamdenoise.sources.demo import DemoClip

SMALL, MID, BIG = (8, 16, 32, 64), (16, 32, 64, 128), (32, 64, 128, 256)


def write_tier(
    folder: Path,
    name: str,
    channels,
    quality: float | None,
    seed: int = 0,
    int8: float | None = None,
    motion: str | None = None,
) -> Path:
    """A real weights file of a tier (random weights: speed tests need no training); per
    frame, or recurrent with ``motion`` compensated that way."""
    torch.manual_seed(seed)
    temporal = {"temporal": True, "motion": motion} if motion else {"temporal": False}
    net = build_net(NetConfig(channels=channels, **temporal))
    final = {} if quality is None else {QUALITY_METRIC: quality}
    if int8 is not None:
        final[f"{QUALITY_METRIC}_int8"] = int8
    path = folder / f"{name}.pt"
    save_weights(path, name, net, {"final_validation": final})
    return path


@pytest.fixture
def heavy_backend():
    """Registers the ``test-heavy`` runtime (torch plus extra real forward passes)."""
    import helpers

    BACKENDS[HEAVY_BACKEND] = "helpers:HeavyTorchDenoiser"
    yield helpers.HeavyTorchDenoiser
    helpers.HeavyTorchDenoiser.extra_passes = 0
    BACKENDS.pop(HEAVY_BACKEND, None)


# -- tiers ---------------------------------------------------------------------------------------
def test_shipped_tiers_form_a_ladder_by_cost_and_quality():
    tiers, broken = discover_tiers()
    assert broken == {}
    by_name = {t.name: t for t in tiers}
    assert {"spatial", "temporal", "temporal-gpu", "wide-temporal", "fixed"} <= set(by_name)
    # the cost comes from the config alone and agrees with a real forward pass
    for name in ("temporal", "temporal-gpu", "wide-temporal"):
        assert by_name[name].gmac_720p * 1e9 == count_macs(name)
    # by cost, the tiers that measure motion on the host after those that do not
    assert tiers == sorted(tiers, key=lambda t: (t.host_motion, t.gmac_720p, t.quality))
    names = [t.name for t in ladder(tiers)]
    assert names[-3:] == ["wide", "temporal-gpu", "wide-temporal"]
    # wide scores above spatial at 0.6x its cost, wide-temporal above temporal: spatial and
    # temporal are never the right step
    for better, worse in (("wide", "spatial"), ("wide-temporal", "temporal")):
        assert by_name[better].gmac_720p < by_name[worse].gmac_720p
        assert by_name[better].quality > by_name[worse].quality and worse not in names
    # fixed costs what temporal costs and scores lower: only used when asked for by name,
    # or for a camera that never moves, where it is the recurrent step below wide-temporal
    # (which beats it on still scenes too) in the place of temporal-gpu
    assert "fixed" not in names
    still = [t.name for t in ladder(tiers, still_camera=True)]
    assert still == [*[n for n in names if not by_name[n].temporal], "fixed", "wide-temporal"]


def test_still_camera_ladder_tops_the_per_frame_tiers_with_the_shift_tier(tmp_path):
    write_tier(tmp_path, "small", SMALL, 28.5)
    write_tier(tmp_path, "mid", MID, 29.0)
    write_tier(tmp_path, "moving", MID, 29.6, motion="flow")
    write_tier(tmp_path, "still", MID, 28.7, motion="shift")  # scored on moving video
    tiers, _ = discover_tiers(tmp_path)
    assert [t.name for t in ladder(tiers)] == ["small", "mid", "moving"]
    assert [t.name for t in ladder(tiers, still_camera=True)] == ["small", "mid", "still"]
    # a flow-aligned tier scoring above the shift tier's still-scene standing stays on top
    write_tier(tmp_path, "strong", MID, 30.2, motion="flow")
    tiers, _ = discover_tiers(tmp_path)
    assert [t.name for t in ladder(tiers)] == ["small", "mid", "strong"]
    assert [t.name for t in ladder(tiers, still_camera=True)] == ["small", "mid", "still", "strong"]
    (tmp_path / "strong.pt").unlink()
    # without a shift tier a still camera gets the usual ladder
    (tmp_path / "still.pt").unlink()
    tiers, _ = discover_tiers(tmp_path)
    assert [t.name for t in ladder(tiers, still_camera=True)] == ["small", "mid", "moving"]


def test_a_new_weights_file_is_a_new_tier(tmp_path):
    write_tier(tmp_path, "small", SMALL, 28.5)
    write_tier(tmp_path, "mid", MID, 29.0)
    write_tier(tmp_path, "big", BIG, 29.6)
    write_tier(tmp_path, "wasteful", BIG, 28.8)  # dearer than mid and no better
    (tmp_path / "junk.pt").write_bytes(b"not a weights file")
    tiers, broken = discover_tiers(tmp_path)
    assert [t.name for t in tiers] == ["small", "mid", "wasteful", "big"]
    assert list(broken) == ["junk.pt"] and "truncated or corrupt" in broken["junk.pt"]
    small, mid, _, big = tiers
    assert small.gmac_720p < mid.gmac_720p < big.gmac_720p
    assert mid.gmac_720p == pytest.approx(5.0, abs=0.01)  # today's architecture
    assert [t.name for t in ladder(tiers)] == ["small", "mid", "big"]
    # without recorded quality the ladder goes by cost alone
    write_tier(tmp_path, "mid", MID, None)
    assert [t.name for t in ladder(discover_tiers(tmp_path)[0])] == ["small", "mid", "big"]


def test_host_side_motion_ranks_a_tier_above_every_in_graph_one(tmp_path):
    """Optical flow on the host is work outside a tier's GMAC: a flow-aligned tier climbs
    after an in-graph one of more GMAC, and neither pushes the other off the ladder."""
    write_tier(tmp_path, "per-frame", MID, 29.0)
    write_tier(tmp_path, "in-graph", MID, 29.5, motion="graph")
    write_tier(tmp_path, "host-flow", MID, 29.8, motion="flow")
    tiers, _ = discover_tiers(tmp_path)
    by_name = {t.name: t for t in tiers}
    assert by_name["in-graph"].gmac_720p > by_name["host-flow"].gmac_720p
    assert [t.host_motion for t in tiers] == [False, False, True]
    assert [t.name for t in ladder(tiers)] == ["per-frame", "in-graph", "host-flow"]


def test_an_int8_rung_ranks_by_its_recorded_score(tmp_path):
    from streamdenoise.auto.denoiser import INT8_PENALTY_DB

    measured = load_tier(write_tier(tmp_path, "measured", MID, 29.0, int8=28.9))
    unmeasured = load_tier(write_tier(tmp_path, "unmeasured", MID, 29.0, seed=1))
    assert measured.describe()["quality_psnr_db_int8"] == 28.9
    assert unmeasured.quality_int8 is None
    assert AutoDenoiser._int8_penalty(measured, ranked=True) == pytest.approx(0.1)
    assert AutoDenoiser._int8_penalty(unmeasured, ranked=True) == INT8_PENALTY_DB


# -- calibration cache -----------------------------------------------------------------------
def test_calibration_cache_is_keyed_and_invalidated(tmp_path, monkeypatch):
    tier = load_tier(write_tier(tmp_path, "mid", MID, 29.0))
    machine = machine_key()
    runtime = {"runtime": "openvino", "version": "openvino 1.0", "device": "cpu", "threads": None}
    key = tier_key(machine, runtime, tier, "fp32", (320, 180))
    # a per-frame tier is timed as the pipeline runs it: two frames in flight on 2+ cores
    one_thread = tier_key(machine, {**runtime, "threads": 1}, tier, "fp32", (320, 180))
    two_cores = hardware.cpu().physical_cores >= 2
    assert (key["frames_in_flight"], one_thread["frames_in_flight"]) == (2 if two_cores else 1, 1)
    cache = CalibrationCache(tmp_path / "cache")
    assert cache.lookup(key) is None
    cache.store(key, {"ms_per_frame": 12.5})
    assert CalibrationCache(tmp_path / "cache").lookup(key) == {"ms_per_frame": 12.5}

    # another CPU kind, whatever this one has (an AVX2-only CPU's flags are ["avx2"])
    other_cpu = {**machine, "flags": [*machine["flags"], "amx_tile"]}
    changed = [
        tier_key(machine, runtime, tier, "fp32", (640, 360)),
        tier_key(machine, runtime, tier, "int8", (320, 180)),
        tier_key(other_cpu, runtime, tier, "fp32", (320, 180)),
        tier_key({**machine, "cores": 64}, runtime, tier, "fp32", (320, 180)),
        tier_key(machine, {**runtime, "version": "openvino 2.0"}, tier, "fp32", (320, 180)),
        tier_key(machine, {**runtime, "runtime": "torch"}, tier, "fp32", (320, 180)),
    ]
    retrained = load_tier(write_tier(tmp_path, "mid", MID, 29.1, seed=1))
    assert retrained.digest != tier.digest
    changed.append(tier_key(machine, runtime, retrained, "fp32", (320, 180)))
    for other in changed:
        assert cache.lookup(other) is None, other

    # a retrained tier's figure replaces the stale one; another size is another entry
    cache.store(changed[-1], {"ms_per_frame": 13.0})
    cache.store(changed[0], {"ms_per_frame": 40.0})
    keys = [e["key"] for e in cache.entries()]
    assert len(keys) == 2 and cache.lookup(key) is None
    assert cache.lookup(changed[-1]) == {"ms_per_frame": 13.0}

    # a tier whose motion the host measures is timed with the estimator's settings: new
    # settings, a new measurement; a per-frame tier's key does not depend on them
    flow_tier = load_tier(write_tier(tmp_path, "recurrent", MID, 29.5, motion="flow"))
    flow_key = tier_key(machine, runtime, flow_tier, "fp32", (320, 180))
    cache.store(flow_key, {"ms_per_frame": 30.0})
    assert key["host_motion"] is None and "patch stride" in flow_key["host_motion"]
    monkeypatch.setattr(motion, "FLOW_PATCH_STRIDE", motion.FLOW_PATCH_STRIDE + 2)
    assert cache.lookup(tier_key(machine, runtime, flow_tier, "fp32", (320, 180))) is None
    assert tier_key(machine, runtime, tier, "fp32", (320, 180)) == key
    # ... and where the state is moved along the flow: OpenVINO's graph, or the host for torch
    assert "in the graph" in flow_key["host_motion"]
    torch_key = tier_key(machine, {**runtime, "runtime": "torch"}, flow_tier, "fp32", (320, 180))
    assert "on the host" in torch_key["host_motion"]

    (tmp_path / "cache" / CACHE_FILE).write_text("{ truncated")
    assert cache.entries() == [] and cache.lookup(changed[0]) is None
    cache.store(key, {"ms_per_frame": 1.0})  # an unreadable cache is rewritten, not fatal
    assert cache.lookup(key) == {"ms_per_frame": 1.0}


def test_auto_calibrates_once_per_machine_size_and_weights(tmp_path):
    folder = tmp_path / "tiers"
    folder.mkdir()
    write_tier(folder, "small", SMALL, 28.5)
    write_tier(folder, "mid", MID, 29.0)
    cache = CalibrationCache(tmp_path / "cache")

    def measured(size=(320, 180), recalibrate=False) -> list[str]:
        auto = AutoDenoiser(
            "torch",
            precision="fp32",
            tiers=discover_tiers(folder)[0],
            cache=cache,
            recalibrate=recalibrate,
        )
        auto.configure(fps=0.05, adaptive=True)  # a generous budget: every tier is measured
        try:
            auto.prepare(*size)
            assert auto.rung.tier.name == "mid"  # the best tier that fits
            frame = DemoClip(*size).noisy(0)
            assert auto.process(frame).shape == frame.shape
            return auto.calibration["measured_now"]
        finally:
            auto.close()

    assert measured() == ["mid/fp32", "small/fp32"]
    assert measured() == []  # cached
    assert measured(recalibrate=True) == ["mid/fp32", "small/fp32"]
    write_tier(folder, "mid", MID, 29.0, seed=7)  # retrained: only this tier again
    assert measured() == ["mid/fp32"]
    assert measured(size=(160, 96)) == ["mid/fp32", "small/fp32"]
    # per size: decoding, and encoding at the one output's default preset
    kinds = sorted((e["key"]["kind"], e["key"].get("work")) for e in cache.entries())
    assert (
        kinds
        == [("codec", "decode")] * 2 + [("codec", "encode veryfast")] * 2 + [("tier", None)] * 4
    )


def test_an_in_graph_search_over_the_budget_does_not_hide_a_host_motion_tier(tmp_path):
    """Host-motion tiers rank above every in-graph one, so the climb reaches a slow in-graph
    search before a flow-aligned tier of fewer GMAC (on a CPU: ``temporal-gpu`` before
    ``wide-temporal``): the search being over the limit must not leave the flow tier
    unmeasured, while a tier surely doing more work than one over the limit still is."""
    write_tier(tmp_path, "per-frame", SMALL, 28.5)
    write_tier(tmp_path, "in-graph", MID, 29.5, motion="graph")
    write_tier(tmp_path, "host-flow", SMALL, 29.8, motion="flow")
    write_tier(tmp_path, "host-flow-big", BIG, 30.0, motion="flow")
    tiers = {t.name: t for t in discover_tiers(tmp_path)[0]}
    auto = AutoDenoiser(
        "torch", precision="fp32", tiers=list(tiers.values()),
        cache=CalibrationCache(tmp_path / "cache"),
    )  # fmt: skip
    auto._size = (160, 96)
    frames = functools.cache(lambda: cal.calibration_frames(160, 96, 8))
    runtime = {"runtime": "torch", "version": "test", "device": "cpu", "threads": None}
    # the two lower tiers as a calibration found them: the search far over the limit
    measured = {Rung(tiers["per-frame"], "fp32"): 1.0, Rung(tiers["in-graph"], "fp32"): 1e6}
    try:
        auto._calibrate(cal.machine_key(), runtime, "fp32", frames, 1e5, measured)
        assert Rung(tiers["host-flow"], "fp32") in measured  # measured now, for real
        assert measured[Rung(tiers["host-flow"], "fp32")] < 1e5
        # more GMAC than a flow tier over the limit, motion handled alike: left unmeasured
        slow_flow = {**measured, Rung(tiers["host-flow"], "fp32"): 2e5}
        del slow_flow[Rung(tiers["host-flow-big"], "fp32")]
        auto._calibrate(cal.machine_key(), runtime, "fp32", frames, 1e5, slow_flow)
        assert Rung(tiers["host-flow-big"], "fp32") not in slow_flow
    finally:
        auto.close()


def test_when_no_tier_fits_the_cheapest_runs_and_the_rate_it_fits_is_said(tmp_path, caplog):
    folder = tmp_path / "tiers"
    folder.mkdir()
    write_tier(folder, "small", SMALL, 28.5)
    write_tier(folder, "mid", MID, 29.0)
    auto = AutoDenoiser(
        "torch", precision="fp32", tiers=discover_tiers(folder)[0],
        cache=CalibrationCache(tmp_path / "cache"),
    )  # fmt: skip
    auto.configure(fps=100_000, adaptive=True)  # no tier takes 7.5 µs a frame
    try:
        with caplog.at_level(logging.WARNING, logger="streamdenoise.auto.denoiser"):
            auto.prepare(160, 96)
        calibration = auto.calibration
        assert auto.rung.tier.name == "small" and calibration["fits"] is False
        # the rate whose budget (75 % of its interval, less the codec's share) small fits
        codec = calibration["codec_ms_per_frame"] / cal.usable_cores()
        small_ms = 1000 * TARGET_USAGE / calibration["fits_fps"] - codec
        assert 0 < small_ms < 5000 and 0 < calibration["fits_fps"] < 100_000
        (line,) = [r.getMessage() for r in caplog.records if "no model tier" in r.getMessage()]
        assert "here with headroom (calibrated within 75% of the frame interval" in line, line
        assert "running the cheapest (small/fp32, with headroom at about" in line, line
    finally:
        auto.close()


def test_codec_reserve_counts_the_outputs_that_encode(tmp_path):
    """Decoding once, plus each encoding output at its own preset; each part measured once."""
    cache = CalibrationCache(tmp_path / "cache")
    machine = cal.machine_key()
    decode = cal.codec_ms(cache, machine, (160, 96), [])
    one = cal.codec_ms(cache, machine, (160, 96), ["ultrafast"])
    two = cal.codec_ms(cache, machine, (160, 96), ["ultrafast", "ultrafast"])
    assert 0 < decode < one < two and two - one == pytest.approx(one - decode)
    # two cameras sharing a denoiser, one output each: a frame pays for one encoder
    shared = cal.codec_ms(cache, machine, (160, 96), ["ultrafast", "ultrafast"], sources=2)
    assert shared == pytest.approx(one)
    works = sorted(e["key"]["work"] for e in cache.entries())
    assert works == ["decode", "encode ultrafast"]


def test_a_recording_at_preset_auto_steps_to_a_cheaper_preset_when_no_tier_fits(tmp_path, caplog):
    """The encoders' costs of a machine where x264 leaves no tier room stand in the cache
    (as a calibration there would have left them); the tiers are measured for real."""
    write_tier(tmp_path, "small", SMALL, 28.5)
    write_tier(tmp_path, "mid", MID, 29.0)
    cache = CalibrationCache(tmp_path / "cache")
    machine, size = cal.machine_key(), (160, 96)

    def too_slow(preset: str) -> None:  # a million ms a frame: no core count makes room
        cache.store(cal.codec_key(machine, size, f"encode {preset}"), {"ms_per_frame": 1e6})

    def start(encoders: list[str]) -> tuple[str | None, dict, str]:
        auto = AutoDenoiser(
            "torch", precision="fp32", tiers=discover_tiers(tmp_path)[0], cache=cache
        )
        auto.configure(fps=1.0, adaptive=True, encoders=encoders)
        try:
            auto.prepare(*size)
            return auto.encoder_preset, auto.calibration, auto.rung.tier.name
        finally:
            auto.close()

    assert start(["auto"])[0] == "veryfast"  # room at the default preset: it stays
    too_slow("veryfast")
    with caplog.at_level(logging.WARNING, logger="streamdenoise.auto.denoiser"):
        preset, calibration, tier = start(["auto"])
    assert preset == "superfast" and tier == "mid" and calibration["fits"]
    steps = calibration["x264_preset_steps"]
    assert [(s["preset"], s["fits"]) for s in steps] == [("veryfast", False), ("superfast", True)]
    assert steps[0]["codec_ms_per_frame"] > 1e6 > steps[1]["codec_ms_per_frame"]
    assert calibration["x264_encoders"] == ["superfast"]
    (line,) = [r.getMessage() for r in caplog.records if "x264 preset" in r.getMessage()]
    assert line.startswith("auto: recording at x264 preset superfast: beside veryfast no model")
    # a preset the user named is never changed: no tier fits beside it, the cheapest runs
    preset, calibration, tier = start(["veryfast"])
    assert preset is None and calibration["x264_preset_steps"] is None and tier == "small"
    too_slow("superfast")
    too_slow("ultrafast")  # no preset leaves room: the cheapest, and the cheapest tier
    preset, calibration, tier = start(["auto", "ultrafast"])
    assert preset == "ultrafast" and tier == "small" and not calibration["fits"]
    assert [s["preset"] for s in calibration["x264_preset_steps"]] == list(AUTO_PRESET_STEPS)


def test_the_preset_is_chosen_again_when_the_cameras_sharing_the_denoiser_change(tmp_path, caplog):
    """``serve``: a shared denoiser chose veryfast for one camera; with three cameras, each
    recording, the interval is a third, and the same encoders per frame leave no rung room
    at veryfast: superfast. One camera again: veryfast. The rung that runs is not touched
    (adaptation's business)."""
    write_tier(tmp_path, "small", SMALL, 28.5)
    write_tier(tmp_path, "mid", MID, 29.0)
    cache = CalibrationCache(tmp_path / "cache")
    machine, size = cal.machine_key(), (160, 96)
    # half of a 1 fps interval for each frame's encoding, over the cores there are
    veryfast = {"ms_per_frame": 500.0 * cal.usable_cores()}
    cache.store(cal.codec_key(machine, size, "encode veryfast"), veryfast)
    auto = AutoDenoiser("torch", precision="fp32", tiers=discover_tiers(tmp_path)[0], cache=cache)
    auto.configure(fps=1.0, adaptive=True, encoders=["auto"], sources=1)
    try:
        auto.prepare(*size)
        assert auto.encoder_preset == "veryfast" and auto.rung.tier.name == "mid"
        rungs, rung = list(auto.rungs), auto.rung
        # every preset's cost measured at the start, on an idle machine: none later, beside
        # the streams (where the cores are busy and the figure would be kept)
        entries = cache.entries()
        works = {e["key"].get("work") for e in entries if e["key"]["kind"] == "codec"}
        assert works == {"decode", *(f"encode {p}" for p in AUTO_PRESET_STEPS)}
        with caplog.at_level(logging.WARNING, logger="streamdenoise.auto.denoiser"):
            chosen = auto.choose_preset_again(3.0, ["auto", "auto", "auto"], 3)
        assert chosen == auto.encoder_preset == "superfast"
        (choice,) = auto.preset_choices
        assert (choice["sources"], choice["fps"], choice["preset"]) == (3, 3.0, "superfast")
        assert [(s["preset"], s["fits"]) for s in choice["steps"]] == [
            ("veryfast", False),
            ("superfast", True),
        ]
        assert choice["x264_encoders"] == ["superfast"] * 3
        (line,) = [r.getMessage() for r in caplog.records if "next file" in r.getMessage()]
        assert "encode at x264 superfast from their next file (3 cameras, 3 fps" in line, line
        assert (auto.rungs, auto.rung) == (rungs, rung)
        assert auto.choose_preset_again(1.0, ["auto"], 1) == "veryfast"
        # outputs with presets of their own: nothing to choose
        assert auto.choose_preset_again(3.0, ["ultrafast"] * 3, 3) is None
        assert auto.encoder_preset == "veryfast" and len(auto.preset_choices) == 2
        assert auto.report()["x264_preset_choices"] == auto.preset_choices
        # a preset the start did not measure (another output's): timed for this choice, but
        # beside the streams, so not kept
        assert auto.choose_preset_again(2.0, ["auto", "faster"], 2) == "veryfast"
        assert auto.preset_choices[-1]["steps"][0]["codec_ms_per_frame"] > 0
        assert cache.entries() == entries
        assert auto.preset_choices[0]["fits"]
        assert not [r for r in caplog.records if "more than" in r.getMessage()]
        # five cameras where no preset leaves room: the cheapest, and the rate that fits said
        for preset in AUTO_PRESET_STEPS:
            cache.store(cal.codec_key(machine, size, f"encode {preset}"), veryfast)
        with caplog.at_level(logging.WARNING, logger="streamdenoise.auto.denoiser"):
            assert auto.choose_preset_again(5.0, ["auto"] * 5, 5) == "ultrafast"
        choice = auto.preset_choices[-1]
        assert not choice["fits"] and 0 < choice["cheapest_fits_fps"] < 5, choice
        line = caplog.records[-1].getMessage()
        assert line.startswith("auto: 5 cameras at 5 fps together at 160x96 are more than"), line
        assert (
            f"the cheapest tier (small/fp32) has it for about {choice['cheapest_fits_fps']:g} fps"
            in line
        )
    finally:
        auto.close()


def test_a_rung_that_streamed_before_is_judged_by_its_busy_time_then(tmp_path):
    """What live runs measured (each rung's busy time per frame, kept per size, outputs and
    x264 preset, as a run on a machine where they did not fit would leave it) outweighs the
    calibration at the next start; the tiers are measured for real."""
    write_tier(tmp_path, "small", SMALL, 28.5)
    write_tier(tmp_path, "mid", MID, 29.0)
    tiers, cache = discover_tiers(tmp_path)[0], CalibrationCache(tmp_path / "cache")

    def start(size=(160, 96), recalibrate=False) -> AutoDenoiser:
        auto = AutoDenoiser(
            "torch", precision="fp32", tiers=tiers, cache=cache, recalibrate=recalibrate
        )
        auto.configure(fps=1.0, adaptive=True, encoders=["auto"])
        try:
            auto.prepare(*size)
            return auto
        finally:
            auto.close()

    first = start()
    assert (first.rung.label, first.encoder_preset) == ("mid/fp32", "veryfast")
    assert first.calibration["busy_ms_seen_before"] is None
    runtime = cal.runtime_key(first.active)
    key = cal.pipeline_key(cal.machine_key(), runtime, (160, 96), ["auto"], 1)

    digests = {tier.name: tier.digest for tier in tiers}

    def streamed(label: str, busy_ms: float, weights: str | None = None) -> None:
        """At 1 fps 1000 ms is 100 % busy; by the tier's weights unless ``weights``."""
        rungs = (cache.lookup(key) or {}).get("rungs", {})
        weights = weights or digests[label.split("/")[0]]
        entry = {"busy_ms": busy_ms, "checks": 2, "weights": weights}
        cache.store(key, {"rungs": {**rungs, label: entry}})

    streamed("mid/fp32 beside veryfast", 1000.0, weights="0" * 64)  # other weights of the name
    assert start().rung.label == "mid/fp32"
    streamed("mid/fp32 beside veryfast", 1000.0)  # it did not fit: the start is not repeated
    second = start()
    assert (second.rung.label, second.encoder_preset) == ("small/fp32", "veryfast")
    assert second.calibration["busy_ms_seen_before"] == {"mid/fp32": 1000.0}
    # and the rung it went over budget on is tried again only after the longest back-off
    rules = AdaptRules()
    assert first.calibration["first_step_up_after_s"] == rules.up_delay_s
    assert second.calibration["first_step_up_after_s"] == rules.up_delay_max_s
    streamed("small/fp32 beside veryfast", 900.0)  # nothing fits beside veryfast: superfast
    third = start()
    assert (third.rung.label, third.encoder_preset) == ("mid/fp32", "superfast")
    assert [s["fits"] for s in third.calibration["x264_preset_steps"]] == [False, True]
    streamed("mid/fp32 beside superfast", 500.0)  # what fit, measured: trusted as it is
    assert start().calibration["fits_fps"] == pytest.approx(1000 * rules.overuse / 500.0)
    # a rung that held beside veryfast, busy over the calibration's margin but under the
    # share at which adaptation steps down, is started with again
    streamed("mid/fp32 beside veryfast", 0.8 * 1000)
    held = start()
    assert (held.rung.label, held.encoder_preset) == ("mid/fp32", "veryfast")
    assert held.calibration["busy_ms_seen_before"]["mid/fp32"] == 800.0
    # another size, or a calibration asked for afresh, knows nothing of those runs
    assert start(size=(96, 64)).rung.label == "mid/fp32"
    fresh = start(recalibrate=True)
    assert fresh.rung.label == "mid/fp32" and fresh.calibration["busy_ms_seen_before"] is None


def learning_auto(folder: Path) -> tuple[AutoDenoiser, CalibrationCache]:
    """An adaptive torch fp32 ``auto`` over the tiers written in ``folder``, for a 10 fps
    source with no encoder beside it, learning into a cache there."""
    cache = CalibrationCache(folder / "cache")
    auto = AutoDenoiser("torch", precision="fp32", tiers=discover_tiers(folder)[0], cache=cache)
    auto.configure(fps=10.0, adaptive=True, encoders=[])
    return auto, cache


def test_what_a_run_learns_is_kept_for_its_size_only(tmp_path):
    """The busy times a pipeline reports are kept per rung at the size the start was chosen
    for; after the stream changes size nothing more is learned."""
    write_tier(tmp_path, "small", SMALL, 28.5)
    write_tier(tmp_path, "mid", MID, 29.0)
    auto, cache = learning_auto(tmp_path)
    now = time.monotonic()
    try:
        auto.prepare(160, 96)
        label = f"{auto.rung.label} beside no encoder"
        for index in range(40):  # 4 s of frames each busy 20 ms: 3 checks after settling
            auto.frame_done(now + index / 10, busy_s=0.02, denoise_s=0.01, drops=0)
        auto.prepare(96, 64)
        for index in range(40, 80):
            auto.frame_done(now + index / 10, busy_s=0.09, denoise_s=0.08, drops=0)
        learned = auto.report()["busy_ms_learned"]
    finally:
        auto.close()
    assert list(learned) == [label] and learned[label]["busy_ms"] == pytest.approx(20.0)
    (entry,) = [e for e in cache.entries() if e["key"]["kind"] == "pipeline"]
    assert entry["key"]["size"] == "160x96" and entry["result"]["rungs"][label]["busy_ms"] == 20.0


def test_a_run_learns_from_its_latest_checks_only(tmp_path, monkeypatch):
    """What a long run learns is the median of its last checks: bounded memory, and the
    conditions of now rather than of days ago."""
    import streamdenoise.auto.denoiser as auto_module

    monkeypatch.setattr(auto_module, "LEARNED_CHECKS", 3)
    write_tier(tmp_path, "small", SMALL, 28.5)
    auto, _ = learning_auto(tmp_path)
    now = time.monotonic()
    try:
        auto.prepare(160, 96)
        for index in range(200):  # 20 s: busy 20 ms per frame, then 30 ms for the last 10 s
            busy = 0.02 if index < 100 else 0.03
            auto.frame_done(now + index / 10, busy_s=busy, denoise_s=busy / 2, drops=0)
        (learned,) = auto.report()["busy_ms_learned"].values()
    finally:
        auto.close()
    assert learned["checks"] == 3 and learned["busy_ms"] == pytest.approx(30.0)


@pytest.mark.parametrize("configured", [True, False])
def test_lossless_runs_the_strongest_tier_without_calibrating(tmp_path, configured):
    """A lossless run, and frame-by-frame use with no pipeline to say the source's rate."""
    write_tier(tmp_path, "small", SMALL, 28.5)
    write_tier(tmp_path, "mid", MID, 29.0)
    cache = CalibrationCache(tmp_path / "cache")
    auto = AutoDenoiser("torch", tiers=discover_tiers(tmp_path)[0], cache=cache)
    if configured:
        auto.configure(fps=25.0, adaptive=False)
    try:
        assert auto.describe()["precision"] == auto.precision != "auto"
        auto.prepare(160, 96)
        assert auto.rung.tier.name == "mid" and "skipped" in auto.calibration
        assert not cache.path.exists()
    finally:
        auto.close()


# -- switching -----------------------------------------------------------------------------------
def test_switching_carries_the_recurrent_state_so_the_output_does_not_jump():
    clip = DemoClip(160, 96)
    frames = [clip.noisy(i) for i in range(6)]
    running = create_backend("torch", model="temporal", precision="fp32", device="cpu")
    for image in frames[:5]:
        running.process(image)
    taking_over = create_backend("torch", model="temporal", precision="fp32", device="cpu")
    taking_over.prepare(160, 96)
    assert taking_over.carry_state(running, frames[4])
    np.testing.assert_array_equal(taking_over.state_array(), running.state_array())
    # the next frame comes out exactly as if no switch had happened
    np.testing.assert_array_equal(taking_over.process(frames[5]), running.process(frames[5]))

    fresh = create_backend("torch", model="temporal", precision="fp32", device="cpu")
    assert not np.array_equal(fresh.process(frames[5]), taking_over.process(frames[5]))
    # a per-frame model has no state to take over; the next temporal one starts afresh
    spatial = create_backend("torch", model="spatial", precision="fp32", device="cpu")
    assert not spatial.carry_state(running, frames[4])
    assert not running.carry_state(spatial, frames[4]) and running.state_array() is None


# -- adaptation ----------------------------------------------------------------------------------
def feed(detector, seconds: float, busy: float, fps: float = 25, drops_per_s: float = 0, t=0.0):
    """Frames at ``fps`` for ``seconds`` that each keep the worker busy ``busy`` seconds,
    until the detector decides; returns ([(time, decision)] or [], time at the end)."""
    dropped = 0.0
    for i in range(1, int(seconds * fps) + 1):
        dropped += drops_per_s / fps
        decision = detector.frame(t + i / fps, busy, busy, int(dropped))
        if decision:
            return [(t + i / fps, decision)], t + i / fps
    return [], t + seconds


def test_detector_steps_down_fast_and_up_slowly_with_hysteresis():
    detector = OveruseDetector(AdaptRules(), interval_s=0.040)
    detector.can_go_down, detector.up_ratio = True, 1.5
    # 80 % of the interval: inside the band, nothing happens either way
    decisions, t = feed(detector, 30, busy=0.032)
    assert decisions == []
    # 90 %: down after two checks in a row, about two seconds
    start = t
    decisions, t = feed(detector, 5, busy=0.036, t=t)
    assert len(decisions) == 1 and decisions[0][1].step == -1
    assert "over budget" in decisions[0][1].reason and 1.0 < t - start < 2.5
    detector.switched(t, -1)
    # 40 % now, 60 % predicted for the tier above (<= 70 %): up, but only after 10 s of it
    decisions, t2 = feed(detector, 9, busy=0.016, t=t)
    assert decisions == []
    decisions, t2 = feed(detector, 3, busy=0.016, t=t2)
    assert [d.step for _, d in decisions] == [1] and "headroom" in decisions[0][1].reason
    # 30 % now but 75 % predicted for the tier above: stays put however long it lasts
    detector.up_ratio = 2.5
    detector.switched(t2, 0)
    decisions, t3 = feed(detector, 30, busy=0.012, t=t2)
    assert decisions == [] and detector.fitted
    # ... unless the tier above kept up at this rate before, at 60 % of the interval
    detector.up_busy_s = 0.024
    detector.switched(t3, 0)
    decisions, _ = feed(detector, 12, busy=0.012, t=t3)
    assert [d.step for _, d in decisions] == [1] and "predicted at 60%" in decisions[0][1].reason


def test_detector_backs_off_when_a_step_up_does_not_hold_and_watches_drops():
    rules = AdaptRules()
    detector = OveruseDetector(rules, interval_s=0.040)
    detector.can_go_down, detector.up_ratio = True, 1.5
    detector.switched(100.0, +1)
    detector.switched(110.0, -1)  # the step up failed within 40 s
    assert detector.up_delay_s == 2 * rules.up_delay_s
    detector.switched(130.0, +1)
    detector.switched(140.0, -1)
    assert detector.up_delay_s == 4 * rules.up_delay_s
    detector.switched(200.0, -1)  # a new overload long after the last step up
    assert detector.up_delay_s == rules.up_delay_s
    # light work but the queue drops 5 % of the frames: the source outruns the stage
    decisions, _ = feed(detector, 3, busy=0.010, drops_per_s=1.3, t=300.0)
    assert decisions and "falling behind" in decisions[0][1].reason


def small_and_big_auto(tmp_path: Path) -> AutoDenoiser:
    """``auto`` on the heavy backend over two real tiers, with quick adaptation rules. Their
    calibration is stored as a quiet moment of this machine leaves it, small at half big's
    cost: measured in the test they take about 5 and 6 ms a frame at 160x96 (2-core Zen 3),
    and a reading of small at a busy moment once ranked it no cheaper than big, which left
    big alone on the ladder with nowhere to step down to. The load and the adaptation are
    real; the calibration itself is tested above."""
    folder = tmp_path / "tiers"
    folder.mkdir()
    write_tier(folder, "small", SMALL, 28.5)
    write_tier(folder, "big", MID, 29.5)
    tiers = discover_tiers(folder)[0]
    cache = CalibrationCache(tmp_path / "cache")
    for tier in tiers:
        denoiser = create_backend(HEAVY_BACKEND, model=tier.model_arg, precision="fp32")
        runtime = cal.runtime_key(denoiser)
        denoiser.close()
        key = cal.tier_key(cal.machine_key(), runtime, tier, "fp32", (160, 96))
        cache.store(key, {"ms_per_frame": {"small": 5.0, "big": 10.0}[tier.name]})
    return AutoDenoiser(
        HEAVY_BACKEND,
        precision="fp32",
        tiers=tiers,
        cache=cache,
        rules=AdaptRules(check_s=0.5, up_delay_s=1.5, settle_frames=2),
    )


def test_a_step_back_up_is_judged_by_what_the_tier_took_at_that_rate_before(
    tmp_path, heavy_backend
):
    """A shared ``auto`` whose cameras come and go: the big tier kept up at 8 fps, fell
    behind at 24 and was left for the small one; back at 8 fps, a step up to it is judged by
    the busy time it had there. Left at 8 fps itself (a load that is still here), it is not."""
    auto = small_and_big_auto(tmp_path)
    auto.configure(8.0, adaptive=True, encoders=())
    auto.prepare(160, 96)
    big, small = auto.rungs[1], auto.rungs[0]
    assert auto.rung == big
    image = np.zeros((96, 160, 3), np.uint8)

    def stream(t: float, seconds: float, fps: float, busy: float) -> float:
        for _ in range(int(seconds * fps)):
            t += 1 / fps
            auto.shared_frames_done(t, [image], busy, 0)
        return t

    t = stream(0.0, 3, 8.0, 0.020)  # 16 % of the interval: kept up
    auto.set_rate(24.0)
    t = stream(t, 3, 24.0, 0.060)  # 144 %: down
    for builder in auto._builders:
        builder.join(timeout=60)
    assert auto.shared_switch(t) and auto.rung == small
    assert auto._detector.up_busy_s is None  # it never kept up at 24 fps
    auto.set_rate(8.0)
    assert auto._detector.up_busy_s == pytest.approx(0.020)
    # another precision of that tier is judged by it too, scaled by their calibrated costs
    half = Rung(big.tier, "int8")
    auto.rungs.insert(1, half)
    auto.cost_ms[half] = auto.cost_ms[big] / 2
    auto._update_detector()
    assert auto._detector.up_busy_s == pytest.approx(0.010)
    auto.rungs.remove(half)
    auto._update_detector()
    auto._left_at[big] = 8.0  # had it fallen behind at 8 fps, its figure would be stale
    auto._update_detector()
    assert auto._detector.up_busy_s is None
    auto.close()


def load_until_step_down(heavy_backend, recent_times, fps: float, runner, auto) -> None:
    """Real load until ``auto`` steps down: enough extra forward passes that a call takes about
    three frame intervals, judged by a typical one of the ``recent_times()``, and twice as
    many every 15 s while no step down comes and the calls stay under two intervals (on a
    busy shared host the recent calls can look slower than the loaded ones turn out to be,
    and a load that merely fits must not hang; a load that took is not raised further, or the
    calls grow longer than the detector's checks)."""
    before = len(auto.switches)
    passes = math.ceil(3 / fps / statistics.median(recent_times()))
    heavy_backend.extra_passes = passes
    now = time.monotonic()
    deadline, raise_at = now + 120, now + 15
    while len(auto.switches) == before:
        assert runner.is_alive(), "the stream stopped before a step down"
        assert time.monotonic() < deadline, (
            f"no step down with {passes} extra passes a frame; rungs "
            f"{[(r.label, round(auto.cost_ms[r], 2)) for r in auto.rungs]}, recent frames "
            f"{[round(t, 3) for t in recent_times()]} s"
        )
        if time.monotonic() > raise_at and statistics.median(recent_times()) < 2 / fps:
            passes *= 2  # the load did not take (calls under two intervals): more of it
            heavy_backend.extra_passes = passes
            raise_at += 15
        time.sleep(0.05)


def waiter(runner: threading.Thread, auto: AutoDenoiser):
    """``wait_for(condition, what)`` while ``runner`` streams into ``auto``."""

    def wait_for(condition, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert runner.is_alive(), f"the stream stopped before {what}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {auto.switches}"
            time.sleep(0.05)

    return wait_for


@pytest.mark.slow
def test_auto_steps_down_under_real_load_and_back_up_when_it_goes(tmp_path, heavy_backend):
    from rich.console import Console

    from streamdenoise.options import SourceOptions
    from streamdenoise.pipeline import Pipeline, PipelineConfig
    from streamdenoise.status import status_text, tiers_table

    fps = 4
    clip = make_clip(tmp_path / "live.mp4", frames=16, size=(160, 96), fps=fps)
    auto = small_and_big_auto(tmp_path)
    stats = tmp_path / "stats.json"
    config = PipelineConfig(
        source=str(clip),
        outputs=["null"],
        policy="latest",
        source_options=SourceOptions(realtime=True, loop=True),
        status=False,
        stats_json=stats,
    )
    pipeline = Pipeline(config, backend=auto)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(report=pipeline.run()), daemon=True)
    runner.start()
    wait_for = waiter(runner, auto)

    try:
        # Both tiers fit 4 fps easily: auto runs the big one (at once, or after a step up
        # if the calibration caught this shared machine at a busy moment).
        wait_for(lambda: auto.label == "big/fp32" and auto.spans[-1]["frames"] >= 6, "big")
        assert "model big/fp32" in status_text(pipeline.snapshot())
        # Load: every frame of either tier now also computes enough extra forward passes
        # that the big tier's frames would take about three frame intervals.
        before = len(auto.switches)
        recent = functools.partial(pipeline.metrics.latency["denoise"].last, 5)
        load_until_step_down(heavy_backend, recent, fps, runner, auto)
        heavy_backend.extra_passes = 0  # the load goes away
        wait_for(lambda: len(auto.switches) > before + 1, "a step back up")
    finally:
        heavy_backend.extra_passes = 0
        pipeline.stop()
        runner.join(timeout=60)
    down, up = auto.switches[before : before + 2]
    assert (down["from"], down["to"], down["direction"]) == ("big/fp32", "small/fp32", "down")
    assert down["reason"].startswith(("over budget", "falling behind"))
    assert (up["from"], up["to"], up["direction"]) == ("small/fp32", "big/fp32", "up")
    assert up["reason"].startswith("headroom") and up["t_s"] > down["t_s"]

    report = json.loads(stats.read_text())
    assert report["model"] == "big" and report["backend"]["backend"] == "torch"
    assert report["switches"] == auto.switches and report["switches"][before:] == [down, up]
    spans = report["auto"]["spans"]
    assert [s["model"] for s in spans[-3:]] == ["big", "small", "big"]
    assert all(s["frames"] > 0 for s in spans[-3:])
    assert spans[-2]["from_s"] == down["t_s"] and spans[-1]["from_s"] == up["t_s"]
    assert sum(s["frames"] for s in spans) == report["frames_out"]
    console = Console(record=True, width=200)
    console.print(tiers_table(report))
    table = console.export_text()
    assert "small" in table and down["reason"][:40] in table and "headroom" in table

    # what each rung was busy per frame while it streamed: reported, and kept for next time
    learned = report["auto"]["busy_ms_learned"]
    labels = {"small/fp32 beside no encoder", "big/fp32 beside no encoder"}
    assert set(learned) == labels and all(v["checks"] >= 2 for v in learned.values())
    (kept,) = [e["result"]["rungs"] for e in auto.cache.entries() if e["key"]["kind"] == "pipeline"]
    assert {k: v["busy_ms"] for k, v in kept.items()} == {
        k: v["busy_ms"] for k, v in learned.items()
    }


@pytest.mark.slow
def test_a_shared_auto_steps_down_under_real_load_and_back_up(tmp_path, heavy_backend):
    """``serve``'s shared ``model: auto`` adapts as ``run``'s does: two cameras' frames in one
    call at their summed rate; the load (real extra forward passes) makes it step down, the
    load gone it steps back up, and the cameras' states follow each switch."""
    from streamdenoise.serve.service import SharedAutoService

    fps = 4  # per camera; two cameras
    auto = small_and_big_auto(tmp_path)
    service = SharedAutoService(auto)
    service.rate, service.encoders = lambda: 2 * fps, lambda: [[], []]
    clip = DemoClip(160, 96, fps, seed=3)
    states = [service.new_state(), service.new_state()]
    calls: list[float] = []
    stop = threading.Event()

    def cameras() -> None:
        nonlocal states
        due = time.monotonic()
        while not stop.is_set():
            image = clip.noisy(len(calls))
            started = time.monotonic()
            out, states = service.denoise([image, image[:, ::-1].copy()], states)
            assert [o.shape for o in out] == [image.shape] * 2
            calls.append(time.monotonic() - started)
            due += 1 / fps
            time.sleep(max(0.0, due - time.monotonic()))

    runner = threading.Thread(target=cameras, daemon=True)
    runner.start()
    wait_for = waiter(runner, auto)

    try:
        wait_for(lambda: auto.label == "big/fp32" and auto.spans[-1]["frames"] >= 12, "big")
        assert service.describe()["source_fps"] == 2 * fps
        before = len(auto.switches)
        # every call of either tier now takes about three of its interval, at the big tier's pace
        load_until_step_down(heavy_backend, lambda: calls[-6:], fps, runner, auto)
        heavy_backend.extra_passes = 0
        wait_for(lambda: len(auto.switches) > before + 1, "a step back up")
        wait_for(lambda: auto.spans[-1]["frames"] >= 4, "frames on the big tier again")
    finally:
        heavy_backend.extra_passes = 0
        stop.set()
        runner.join(timeout=60)
        service.close()
    down, up = auto.switches[before : before + 2]
    assert (down["from"], down["to"], down["direction"]) == ("big/fp32", "small/fp32", "down")
    assert down["reason"].startswith("over budget") and down["state"] == "reset"
    assert (up["from"], up["to"], up["direction"]) == ("small/fp32", "big/fp32", "up")
    assert up["reason"].startswith("headroom")
    described = service.describe()
    assert described["switches"][before:] == [down, up]
    assert described["rungs"] == ["small/fp32", "big/fp32"]
    # the states were handed from tier to tier: each now belongs to the big tier's denoiser
    assert {state.owner for state in states} == {f"torch:{auto.active.model}:fp32"}
    assert all(state.recurrent is None for state in states)  # per-frame tiers keep none
    assert sum(span["frames"] for span in auto.spans) == 2 * len(calls)


# -- the command line --------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_live_file_runs_auto_by_default_and_devices_lists_the_calibration(
    clip, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    stats = tmp_path / "stats.json"
    args = ("run", clip, "--realtime", "--policy", "latest", "-o", tmp_path / "out.mp4")
    result = run_cli(*args, "--stats-json", stats, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "measuring the model tiers at 160x96" in result.stderr
    report = json.loads(stats.read_text())
    rungs = [r["name"] for r in report["auto"]["rungs"]]
    assert report["model"] in rungs and report["backend"]["model"] == report["model"]
    assert isinstance(report["switches"], list)
    assert report["auto"]["calibration"]["measured_now"]
    assert sum(s["frames"] for s in report["auto"]["spans"]) == report["frames_out"]
    assert "model auto: tiers that ran" in result.stdout and "ladder:" in result.stdout

    assert report["auto"]["calibration"]["x264_encoders"] == ["veryfast"]
    assert report["sinks"][str(tmp_path / "out.mp4")]["x264_preset"] == "veryfast"
    assert b"subme=2 " in (tmp_path / "out.mp4").read_bytes()  # x264's own record: veryfast

    # where x264 at veryfast leaves no tier room (its cost as a slower machine's calibration
    # leaves it), the recording is made at superfast: said, reported, and in the file
    cache = CalibrationCache(tmp_path / "cache" / "streamdenoise")
    slow = {"ms_per_frame": 1e6}
    cache.store(cal.codec_key(cal.machine_key(), (160, 96), "encode veryfast"), slow)
    stepped_out = tmp_path / "stepped.mp4"
    stepped = run_cli(*args[:-1], stepped_out, "--stats-json", stats, cwd=tmp_path, timeout=300)
    assert stepped.returncode == 0, stepped.stderr
    assert "recording at x264 preset superfast" in stepped.stderr
    report = json.loads(stats.read_text())
    assert report["sinks"][str(stepped_out)]["x264_preset"] == "superfast"
    assert report["auto"]["calibration"]["x264_encoders"] == ["superfast"]
    assert b"subme=1 " in stepped_out.read_bytes()

    # the tiers are cached; the reserve follows this run's outputs (the null output encodes
    # nothing, the file encodes at its own preset)
    args = (*args[:-1], tmp_path / "again.mp4", "--preset", "ultrafast", "-o", "null")
    again = run_cli(*args, "--stats-json", stats, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "measuring" not in again.stderr
    calibration = json.loads(stats.read_text())["auto"]["calibration"]
    assert calibration["measured_now"] == [] and calibration["x264_encoders"] == ["ultrafast"]

    # a camera that never moves: the per-frame rungs and wide-temporal (cached), `fixed`
    # (measured now) below wide-temporal in the place of the in-graph search tier; what stays
    # a rung is what the measured costs leave
    still = run_cli(*args, "--still-camera", "-y", "--stats-json", stats, cwd=tmp_path, timeout=300)
    assert still.returncode == 0, still.stderr
    report = json.loads(stats.read_text())
    assert report["auto"]["still_camera"] is True
    still_rungs = [r["name"] for r in report["auto"]["rungs"]]
    assert still_rungs[-1] in ("fixed", "wide-temporal") and "temporal-gpu" not in still_rungs
    measured = report["auto"]["calibration"]["measured_now"]
    assert measured and {label.split("/")[0] for label in measured} == {"fixed"}

    found = run_cli("devices", "--json", timeout=120)
    assert found.returncode == 0, found.stderr
    models = json.loads(found.stdout)["models"]
    assert models["fixed"]["ladder_rank"] is None
    still_ladder = [t.name for t in ladder(discover_tiers()[0], True)]
    assert models["fixed"]["still_camera_ladder_rank"] == still_ladder.index("fixed") + 1
    assert models["wide-temporal"]["still_camera_ladder_rank"] == len(still_ladder)
    assert models["temporal-gpu"]["still_camera_ladder_rank"] is None
    for name in rungs:
        sizes = {c["size"] for c in models[name]["calibrated"]}
        assert "160x96" in sizes and models[name]["ladder_rank"] >= 1


@pytest.mark.slow
def test_cli_live_run_teaches_the_next_start(clip, tmp_path, monkeypatch):
    """Two live runs of the command line on one cache: the first keeps each rung's busy time
    per frame, the second starts judging those rungs by it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    stats = tmp_path / "stats.json"
    args = ("run", clip, "--realtime", "--loop", "--duration", "4", "--policy", "latest",
            "-o", "null", "--stats-json", stats)  # fmt: skip
    first = run_cli(*args, cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    learned = json.loads(stats.read_text())["auto"]["busy_ms_learned"]
    assert learned and all(label.endswith(" beside no encoder") for label in learned)
    assert all(v["checks"] >= 2 and v["busy_ms"] > 0 for v in learned.values())
    second = run_cli(*args, cwd=tmp_path, timeout=300)
    assert second.returncode == 0, second.stderr
    calibration = json.loads(stats.read_text())["auto"]["calibration"]
    assert calibration["measured_now"] == []
    seen = {label.partition(" beside")[0]: v["busy_ms"] for label, v in learned.items()}
    assert calibration["busy_ms_seen_before"] == seen


def test_devices_lists_what_live_runs_saw_each_tier_cost(tmp_path, monkeypatch):
    """Busy times a live run stored (here as one would, for the shipped ``nano``) show in
    ``devices`` beside the calibration; those of other weights of the name do not."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    nano = {t.name: t for t in discover_tiers()[0]}["nano"]
    runtime = {"runtime": "openvino", "version": "openvino 0", "device": "cpu", "threads": None}
    key = cal.pipeline_key(cal.machine_key(), runtime, (1280, 720), ["auto"], 1)
    seen = {"busy_ms": 17.7, "checks": 55, "at": "2026-12-02T09:00:00+00:00"}
    rungs = {
        "nano/bf16 beside veryfast": {**seen, "weights": nano.digest},
        "nano/int8 beside veryfast": {**seen, "weights": "0" * 64},
    }
    CalibrationCache(tmp_path / "cache" / "streamdenoise").store(key, {"rungs": rungs})
    found = run_cli("devices", "--json", timeout=120)
    assert found.returncode == 0, found.stderr
    streamed = json.loads(found.stdout)["models"]["nano"]["streamed"]
    assert streamed == [
        {"runtime": "openvino", "precision": "bf16", "size": "1280x720", "beside": "veryfast",
         "busy_ms_per_frame": 17.7, "checks": 55, "at": "2026-12-02T09:00:00+00:00"}
    ]  # fmt: skip
    from rich.console import Console

    from streamdenoise.commands.devices import models, models_table

    console = Console(record=True, width=400)
    console.print(models_table(models()))
    line = "busy 17.7 ms/frame streaming 1280x720 openvino bf16 beside veryfast"
    assert line in console.export_text()


def test_cli_auto_needs_a_neural_backend(tmp_path):
    result = run_cli("run", "demo", "--model", "auto", "--backend", "atadenoise", "-o", "null")
    assert result.returncode == 2
    assert "--model auto needs a neural backend" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
