"""``--model auto``: pick and adapt the model tier so that a live source keeps its frame rate.

See :mod:`streamdenoise.auto.denoiser` (the denoiser), :mod:`streamdenoise.auto.calibration`
(measuring and caching tier speeds) and :mod:`streamdenoise.auto.adapt` (when to switch).
"""

from streamdenoise.auto.denoiser import AutoDenoiser, Rung

__all__ = ["AutoDenoiser", "Rung"]
