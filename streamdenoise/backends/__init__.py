"""Denoiser backends, looked up by name so that optional packages are imported only on use."""

from __future__ import annotations

import importlib
from typing import Any

from streamdenoise.backends.base import Denoiser
from streamdenoise.errors import BackendUnavailable, UsageError

# name -> "module:Class". Each class may define a classmethod ``unavailable_reason()``
# returning None when it can run here, or one line saying what is missing and how to fix it.
BACKENDS: dict[str, str] = {
    "torch": "streamdenoise.backends.torch_backend:TorchDenoiser",
    "onnxruntime": "streamdenoise.backends.onnxruntime_backend:OnnxRuntimeDenoiser",
    "openvino": "streamdenoise.backends.openvino_backend:OpenVINODenoiser",
    "tensorrt": "streamdenoise.backends.tensorrt_backend:TensorRTDenoiser",
    "hqdn3d": "streamdenoise.backends.classical:Hqdn3dDenoiser",
    "nlmeans": "streamdenoise.backends.classical:NlmeansDenoiser",
    "atadenoise": "streamdenoise.backends.classical:AtadenoiseDenoiser",
    "opencv-nlm": "streamdenoise.backends.classical:OpenCVNlmDenoiser",
    "bm3d": "streamdenoise.backends.classical:BM3DFilterDenoiser",
    "cbm3d": "streamdenoise.backends.classical:CBM3DDenoiser",
    "vbm3d": "streamdenoise.backends.classical:VBM3DDenoiser",
    # Pass-through: the "noisy input" row of evaluations, and decode/encode-only pipelines.
    "identity": "streamdenoise.backends.identity:IdentityDenoiser",
}

DEFAULT_BACKEND = "torch"


def backend_class(name: str) -> type[Denoiser]:
    try:
        target = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise UsageError(f"unknown backend {name!r} (choose from: {known})") from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BackendUnavailable(f"backend {name!r} cannot be loaded: {err}") from err
    return getattr(module, class_name)


def unavailable_reason(name: str) -> str | None:
    """None if backend ``name`` can run on this machine, else a one-line reason."""
    try:
        cls = backend_class(name)
    except BackendUnavailable as err:
        return str(err)
    check = getattr(cls, "unavailable_reason", None)
    return check() if check else None


def create_backend(name: str, **kwargs: Any) -> Denoiser:
    """Instantiate backend ``name``; raises a UserError subclass with one readable line."""
    reason = unavailable_reason(name)
    if reason:
        raise BackendUnavailable(f"backend {name!r} is unavailable: {reason}")
    return backend_class(name)(**kwargs)


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Denoiser", "backend_class", "create_backend"]
