"""ONNX export: the one graph that ONNX Runtime, OpenVINO and TensorRT all run.

Graph interface (opset ``OPSET``, float32, NCHW, values in [0, 1]):

* inputs ``noisy`` (N, 3, H, W), ``sigma`` (N, 3, 1, 1) per-channel noise std, and for temporal
  models ``prev`` (N, 6, H, W): the recurrent state (previous output, running average of the
  noisy frames), motion-compensated by the backend;
* output ``denoised`` (N, C, H, W): the image is its first 3 channels, and the whole of it is
  the next call's ``prev``. C is ``NetConfig.state_channels``: 6 for temporal models, else 3.

N, H and W are dynamic. H and W must be multiples of the model's ``multiple`` (stored in the
file's metadata); the backend wrapper pads, never the user. File names carry the model name
and a hash of the weights and architecture, so a retrained model never meets a stale export.
Where exports are kept and found: :mod:`streamdenoise.artifacts`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch

from streamdenoise import artifacts
from streamdenoise.artifacts import int8_filename, onnx_filename
from streamdenoise.errors import BackendUnavailable, UserError
from streamdenoise.models.nets import UNetDenoiser, initial_state

OPSET = 17


def net_hash(net: UNetDenoiser) -> str:
    """12 hex digits identifying the architecture and every weight value."""
    digest = hashlib.sha256(json.dumps(net.config.to_dict(), sort_keys=True).encode())
    for key, tensor in sorted(net.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def input_names(net: UNetDenoiser) -> list[str]:
    return ["noisy", "sigma", "prev"] if net.config.temporal else ["noisy", "sigma"]


def export_onnx(net: UNetDenoiser, path: Path, model: str = "model") -> Path:
    """Write ``net`` as ONNX to ``path`` (atomically) and validate it with onnx.checker."""
    import onnx

    net = net.float().eval()
    multiple = net.config.multiple
    frame = torch.rand(1, 3, 2 * multiple, 3 * multiple)
    args = (frame, torch.full((1, 3, 1, 1), 0.05))
    if net.config.temporal:
        args = (*args, initial_state(frame, net.config.state_channels))
    names = input_names(net)
    image_axes = {0: "batch", 2: "height", 3: "width"}
    dynamic = {name: image_axes for name in names if name != "sigma"}
    dynamic |= {"sigma": {0: "batch"}, "denoised": image_axes}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    # The TorchScript exporter: the dynamo one needs onnxscript, which is not a dependency,
    # and this net has no control flow, which is all the dynamo exporter would add.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            args,
            str(tmp),
            input_names=names,
            output_names=["denoised"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    metadata = {
        "streamdenoise_model": model,
        "streamdenoise_hash": net_hash(net),
        "multiple": str(multiple),
        "temporal": str(net.config.temporal).lower(),
        "config": json.dumps(net.config.to_dict()),
    }
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in proto.metadata_props}


def load_net(model: str) -> UNetDenoiser:
    """The shipped network ``model`` in eval mode (its weights file must exist)."""
    from streamdenoise.models import load_model

    net, _ = load_model(model)
    return net.float().eval()


def write_export(net: UNetDenoiser, folder: Path, model: str, weights: Path | None) -> Path:
    """Export ``net`` into ``folder`` and, when its weights file is known, enter it in the
    folder's manifest (so later runs find it without torch)."""
    digest = net_hash(net)
    path = export_onnx(net, Path(folder) / onnx_filename(model, digest), model)
    if weights is not None:
        artifacts.record_export(path, weights, model, digest, net.config.to_dict())
    return path


def find_or_export_onnx(
    model: str, net: UNetDenoiser | None = None, weights: Path | None = None
) -> Path:
    """Path of an up-to-date ONNX export of ``model``: the shipped one, else a cached one.

    A file whose name carries another weights hash is stale and ignored; a missing export is
    written on the fly to the user cache (a read-only install still works).
    """
    net = net if net is not None else load_net(model)
    found = artifacts.find_file(onnx_filename(model, net_hash(net)))
    if found:
        return found
    target = artifacts.onnx_cache()
    try:
        return write_export(net, target, model, weights)
    except OSError as err:
        raise UserError(f"cannot write the ONNX export into {target}: {err}") from err


def find_int8_onnx(model: str, net: UNetDenoiser | None = None) -> Path:
    """The int8 export of ``model``'s current weights; it needs calibration data, so it is
    never made on the fly: a missing one is a clear error saying how to make it."""
    net = net if net is not None else load_net(model)
    name = int8_filename(onnx_filename(model, net_hash(net)))
    found = artifacts.find_file(name)
    if found is None:
        raise BackendUnavailable(
            f"no int8 export {name} for model {model!r}; make it with: streamdenoise export "
            f"--model {model} --format onnx-int8 --calibration FOLDER_OF_CLEAN_IMAGES"
        )
    return found
