"""Pooling the samples of several interleaved rounds into one summary per contender."""

from __future__ import annotations

from streamdenoise.metrics import PERCENTILES, percentile


def summarize(samples: list[float], digits: int = 2) -> dict:
    """{"p50", "p95", "p99", "max", "count"} of millisecond samples (None when empty)."""
    if not samples:
        return {f"p{q}": None for q in PERCENTILES} | {"max": None, "count": 0}
    out = {f"p{q}": round(percentile(samples, q), digits) for q in PERCENTILES}
    return out | {"max": round(max(samples), digits), "count": len(samples)}


def pool(runs: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Concatenate per-stage sample lists of several runs."""
    pooled: dict[str, list[float]] = {}
    for run in runs:
        for stage, samples in run.items():
            pooled.setdefault(stage, []).extend(samples)
    return pooled


def thin(samples: list[float], limit: int = 2000) -> list[float]:
    """At most ``limit`` evenly spaced sorted samples: enough to redraw a CDF from the JSON."""
    data = sorted(samples)
    if len(data) <= limit:
        return [round(v, 2) for v in data]
    step = (len(data) - 1) / (limit - 1)
    return [round(data[round(i * step)], 2) for i in range(limit)]
