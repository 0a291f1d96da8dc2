"""Trained denoising models shipped with the package, looked up by name."""

from __future__ import annotations

from pathlib import Path

from streamdenoise.errors import UsageError

WEIGHTS_DIR = Path(__file__).parent / "weights"

# Shipped models: "wide-temporal" (recurrent, the default: the top of the ladder, for any
# video), "temporal" (recurrent, wider and costlier, below wide-temporal everywhere; runs when
# named), "temporal-gpu" (temporal's network with its motion search inside the graph: no host
# work, for GPUs), "fixed" (recurrent, aligned by a global shift: for fixed cameras, where
# most of the picture stands still), "spatial" (per frame), "fast" (per frame, about 2 GMAC
# per 720p frame), "tiny" (per frame, about 1 GMAC), "nano" (per frame, entering at 1/4
# resolution: 720p30 on two AVX2 cores) and "wide" (nano with twice its channels, about 3
# GMAC: the rung above it on CPUs with bf16 matrix units; wide-temporal is it made recurrent).
# "wide-temporal-camera" is wide-temporal trained also on a simulated camera's noise (spread
# by demosaicking, sharpened, compressed): for real cameras; it runs when named.
MODEL_NAMES = (
    "temporal",
    "temporal-gpu",
    "wide-temporal",
    "wide-temporal-camera",
    "spatial",
    "fixed",
    "wide",
    "fast",
    "tiny",
    "nano",
)
# Every architecture `streamdenoise train` knows: the shipped models, the recurrent CPU tier
# in training ("small", motion search inside the graph) and "small-spatial", the per-frame
# network of the same cost that "fast" was grown from (see docs/models.md, "Tiers").
TRAINABLE_MODELS = (*MODEL_NAMES, "small", "small-spatial")
#: What runs where no model is named (``Denoiser()``, ``bench``, ``export``): the top of the
#: ladder, what ``run`` gives a file kept whole.
DEFAULT_MODEL = "wide-temporal"


def weights_path(name: str) -> Path:
    """Packaged weights file of model ``name``, or a path given directly by the user."""
    shipped = WEIGHTS_DIR / f"{name}.pt"
    if name in MODEL_NAMES or (Path(name).name == name and shipped.is_file()):
        return shipped  # a tier that ships as a weights file is known by its name
    path = Path(name)
    if path.suffix == ".pt" or path.exists():
        return path
    known = ", ".join(sorted({*MODEL_NAMES, *(p.stem for p in WEIGHTS_DIR.glob("*.pt"))}))
    raise UsageError(f"unknown model {name!r} (choose from: {known}, or a .pt weights file)")


def load_model(name: str):
    """(network in eval mode, weights-file contents) for model name or weights path."""
    from streamdenoise.models.weights import load_weights

    return load_weights(weights_path(name))
