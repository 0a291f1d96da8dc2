"""Who runs: the default model on every backend this machine has, the other shipped model,
and every classical baseline — all created through ``create_backend``."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamdenoise.backends import BACKENDS, DEFAULT_BACKEND, create_backend, unavailable_reason
from streamdenoise.backends.base import Denoiser
from streamdenoise.lab.speed import NEURAL_BACKENDS
from streamdenoise.models import DEFAULT_MODEL, MODEL_NAMES

BASELINES = ("hqdn3d", "atadenoise", "nlmeans", "opencv-nlm")


@dataclass(frozen=True)
class Contender:
    label: str
    backend: str
    kind: str  # "model" | "baseline"
    model: str | None = None
    options: dict = field(default_factory=dict)

    def create(self) -> Denoiser:
        kwargs = dict(self.options)
        if self.model:
            kwargs["model"] = self.model
        return create_backend(self.backend, **kwargs)

    @property
    def quality_id(self) -> str:
        """Quality does not depend on the runtime: one entry per model or baseline."""
        return self.model if self.kind == "model" else self.backend

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "backend": self.backend,
            "kind": self.kind,
            "model": self.model,
        }


def _reason(backend: str) -> str | None:
    try:
        return unavailable_reason(backend)
    except Exception as err:  # a half-installed optional package must not stop the suite
        return f"{type(err).__name__}: {err}"


def lead_model() -> str:
    """The model run on every backend: the default one, or the first whose weights load."""
    for model in (DEFAULT_MODEL, *[m for m in MODEL_NAMES if m != DEFAULT_MODEL]):
        if probe(Contender(model, DEFAULT_BACKEND, "model", model), (64, 64)) is None:
            return model
    return DEFAULT_MODEL


def discover() -> tuple[list[Contender], list[dict]]:
    """(contenders that load here, the others with the reason) in a stable order."""
    # Neural runtimes only: "identity" is registered too, but passing frames through is not
    # the model (it once topped the "fastest backend of the model" column).
    model_backends = [DEFAULT_BACKEND] + [
        name for name in NEURAL_BACKENDS if name in BACKENDS and name != DEFAULT_BACKEND
    ]
    lead = lead_model()
    wanted = [Contender(f"{lead}/{b}", b, "model", lead) for b in model_backends]
    wanted += [
        Contender(f"{m}/{DEFAULT_BACKEND}", DEFAULT_BACKEND, "model", m)
        for m in MODEL_NAMES
        if m != lead
    ]
    wanted += [Contender(b, b, "baseline") for b in BASELINES if b in BACKENDS]
    available, missing = [], []
    for contender in wanted:
        reason = _reason(contender.backend) or probe(contender, (64, 64))
        if reason is None:
            available.append(contender)
        else:
            missing.append({**contender.to_json(), "available": False, "reason": reason})
    return available, missing


def probe(contender: Contender, size: tuple[int, int]) -> str | None:
    """Create, prepare and close once; None if it works, else a one-line reason."""
    try:
        denoiser = contender.create()
        try:
            denoiser.prepare(*size)
        finally:
            denoiser.close()
    except Exception as err:
        first = (str(err).splitlines() or [""])[0]
        return f"{type(err).__name__}: {first}"
    return None
