"""streamdenoise: real-time video denoising for cameras, network streams and files."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamdenoise")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+src"

__all__ = ["Pipeline", "PipelineConfig", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import streamdenoise` stays cheap (no torch/av import for `--version`).
    if name in ("Pipeline", "PipelineConfig"):
        from streamdenoise import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
