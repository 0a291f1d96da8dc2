"""Model artifacts: shipped exports found by the weights' digest, on-the-fly exports cached."""

from __future__ import annotations

import numpy as np
import pytest

from streamdenoise import artifacts
from streamdenoise.backends import create_backend
from streamdenoise.models import MODEL_NAMES, weights_path
from streamdenoise.models.nets import NetConfig, build_net
from streamdenoise.models.onnx import load_net, net_hash
from streamdenoise.models.weights import save_weights


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_the_manifest_matches_the_shipped_weights(model):
    """Fails when weights are retrained without re-exporting into the package folder."""
    digest = net_hash(load_net(model))
    for int8 in (False, True):
        found = artifacts.find_export(weights_path(model), int8=int8)
        assert found is not None and found.path.parent == artifacts.PACKAGED
        assert found.net_hash == digest and digest in found.path.name
        assert NetConfig.from_dict(found.config) == load_net(model).config


def test_export_runtimes_take_the_shipped_export_without_loading_the_network():
    denoiser = create_backend("onnxruntime", model="spatial", precision="fp32")
    try:
        assert denoiser.net is None and denoiser.onnx_path.parent == artifacts.PACKAGED
        frame = np.random.default_rng(0).integers(0, 256, (36, 52, 3), np.uint8)
        assert denoiser.process(frame).shape == frame.shape
    finally:
        denoiser.close()
    assert create_backend("torch", model="spatial", precision="fp32").net is not None


def test_other_weights_are_exported_once_into_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("STREAMDENOISE_CACHE_DIR", raising=False)
    weights = tmp_path / "mine.pt"
    save_weights(weights, "mine", build_net(NetConfig(temporal=False)).eval(), {"note": "test"})
    first = create_backend("onnxruntime", model=str(weights))
    assert first.net is not None  # nothing to find yet: loaded and exported
    assert first.onnx_path.is_relative_to(tmp_path / "cache" / "streamdenoise" / "onnx")
    second = create_backend("onnxruntime", model=str(weights))
    assert second.net is None and second.onnx_path == first.onnx_path  # found by its digest
    save_weights(weights, "mine", build_net(NetConfig(temporal=False)).eval(), {"note": "new"})
    assert create_backend("onnxruntime", model=str(weights)).net is not None  # retrained


def test_exports_follow_weights_whose_metadata_was_rewritten(tmp_path, monkeypatch):
    """Recording a figure in a weights file changes its digest, not its network: the export
    made from it must still be found (and an unrelated entry stay as it was)."""
    import torch

    monkeypatch.setenv("STREAMDENOISE_CACHE_DIR", str(tmp_path))
    weights = tmp_path / "mine.pt"
    save_weights(weights, "mine", build_net(NetConfig(temporal=False)).eval(), {"note": "test"})
    export = create_backend("onnxruntime", model=str(weights)).onnx_path
    other = {"model": "other", "hash": "0", "config": {}, "onnx": "other.onnx"}
    manifest = artifacts.read_manifest(export.parent)
    artifacts.write_manifest(export.parent, {**manifest, "f" * 64: other})
    old_digest = artifacts.file_sha256(weights)
    blob = torch.load(weights, weights_only=True)
    blob["metadata"]["note"] = "scored"
    torch.save(blob, weights)
    assert artifacts.find_export(weights) is None
    artifacts.carry_exports(old_digest, weights)
    assert artifacts.find_export(weights).path == export
    assert artifacts.read_manifest(export.parent)["f" * 64] == other


def test_cache_folder_can_be_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMDENOISE_CACHE_DIR", str(tmp_path))
    assert artifacts.tensorrt_cache() == tmp_path / "tensorrt"
    assert artifacts.onnx_cache() == tmp_path / "onnx"
