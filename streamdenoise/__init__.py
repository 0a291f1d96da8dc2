"""streamdenoise: real-time video denoising for cameras, network streams and files.

``for frame in streamdenoise.frames("demo", max_frames=30): ...`` yields denoised numpy
frames; :class:`Denoiser` denoises frames you already have; :class:`Pipeline` runs a whole
source → outputs job as ``streamdenoise run`` does. See :mod:`streamdenoise.api`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamdenoise.api import DenoisedFrame, Denoiser, StreamFailed, frames, frames_async
    from streamdenoise.frame import Frame
    from streamdenoise.options import SinkOptions, SourceOptions
    from streamdenoise.pipeline import Pipeline, PipelineConfig, Report
    from streamdenoise.sinks.base import Sink

# Lazy, so that `import streamdenoise` costs nothing (not even the package metadata): the CLI
# installs its signal handlers right after, and a Ctrl+C must not land in a slow import.
_EXPORTS = {
    "frames": "streamdenoise.api",
    "frames_async": "streamdenoise.api",
    "Denoiser": "streamdenoise.api",
    "DenoisedFrame": "streamdenoise.api",
    "StreamFailed": "streamdenoise.api",
    "Pipeline": "streamdenoise.pipeline",
    "PipelineConfig": "streamdenoise.pipeline",
    "Report": "streamdenoise.pipeline",
    "SourceOptions": "streamdenoise.options",
    "SinkOptions": "streamdenoise.options",
    "Frame": "streamdenoise.frame",
    "Sink": "streamdenoise.sinks.base",
}

__all__ = [
    "DenoisedFrame",
    "Denoiser",
    "Frame",
    "Pipeline",
    "PipelineConfig",
    "Report",
    "Sink",
    "SinkOptions",
    "SourceOptions",
    "StreamFailed",
    "__version__",
    "frames",
    "frames_async",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("streamdenoise")
        except PackageNotFoundError:  # running from a source tree that was not installed
            return "0.0.0+src"
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'streamdenoise' has no attribute {name!r}")
