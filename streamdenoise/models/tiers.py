"""Model tiers: every shipped weights file, with its cost and quality, read from the files.

A tier is a trained model described by data alone — its architecture (hence its cost in
multiply-accumulates per 1280×720 frame, counted from the network config) and the validation
PSNR its training recorded. Nothing here names a model: a new weights file dropped into
``streamdenoise/models/weights/`` is a new tier.

The *ladder* is what ``--model auto`` climbs: the tiers ordered by cost, keeping only those
that buy quality with it (the Pareto front of cost vs. validation PSNR). A tier that measures
motion on the host (dense optical flow, a global shift) has work its GMAC does not count —
on a GPU it is most of the time per frame — so it ranks above every tier that does all its
work in the graph, whatever their GMAC; calibration then measures what each really costs.
A tier that costs as much as another (within :data:`SAME_COST`) but scores lower, or that
costs more than a cheaper one that scores higher, is never the right step — e.g. ``fixed``,
a model for fixed cameras with ``temporal``'s cost and a lower general-purpose score, stays off
the ladder and is used only when asked for by name. Tiers whose files record no validation
PSNR are ranked by cost.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from streamdenoise.models import WEIGHTS_DIR
from streamdenoise.models.nets import NetConfig

#: The quality figure every training run records (``metadata.final_validation``): PSNR on
#: centre crops of the Vid4 validation videos at AWGN σ = 25.
QUALITY_METRIC = "val_psnr_vid4_crops_sigma25"
#: Tiers whose costs differ by less than this fraction count as the same cost.
SAME_COST = 0.05
#: How far ``fixed`` leads the best per-frame tier on a still scene, at the least: 0.83 dB
#: over ``spatial`` under realistic camera noise at level 30, 1.9–2.5 dB elsewhere
#: (benchmarks/results/quality/quality_still*.md).
STILL_SCENE_LEAD_DB = 0.8


@dataclass(frozen=True)
class Tier:
    name: str
    path: Path
    #: (Not part of equality: the digest already pins the whole file.)
    config: NetConfig = field(compare=False)
    #: Multiply-accumulates per 1280×720 frame, in billions.
    gmac_720p: float
    #: Validation PSNR in dB recorded by training (:data:`QUALITY_METRIC`), None if absent.
    quality: float | None
    #: The same figure for the tier's int8 export where it was measured
    #: (``benchmarks/int8_validation.py --write``), else None.
    quality_int8: float | None
    #: First 12 hex digits of the weights file's SHA-256: a retrained tier is a new tier.
    digest: str

    @property
    def temporal(self) -> bool:
        return self.config.temporal

    @property
    def host_motion(self) -> bool:
        """Whether the backend measures motion on the host for it (work outside its GMAC)."""
        return self.temporal and self.config.motion != "graph"

    @property
    def model_arg(self) -> str:
        """What a backend's ``model`` argument takes: the name for shipped files, else the
        path."""
        return self.name if self.path.parent == WEIGHTS_DIR else str(self.path)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "gmac_per_720p_frame": round(self.gmac_720p, 2),
            "host_motion": self.host_motion,
            "quality_psnr_db": self.quality,
            "quality_psnr_db_int8": self.quality_int8,
            "temporal": self.temporal,
            "weights_sha256": self.digest,
        }


def file_digest(path: Path) -> str:
    return _digest(Path(path).resolve(), *_stat(path))


def _stat(path: Path) -> tuple[int, int]:
    st = Path(path).stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=64)
def _digest(path: Path, _mtime_ns: int, _size: int) -> str:
    """Cached per (path, mtime, size): a file rewritten in place is hashed again."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:12]


def load_tier(path: Path) -> Tier:
    """The tier held by weights file ``path`` (raises UserError for an unusable file)."""
    from streamdenoise.models.macs import count_config_macs
    from streamdenoise.models.weights import read_weights_file

    path = Path(path)
    blob = read_weights_file(path)
    config = NetConfig.from_dict(blob["config"])
    final = blob["metadata"].get("final_validation") or {}
    quality, int8 = final.get(QUALITY_METRIC), final.get(f"{QUALITY_METRIC}_int8")
    return Tier(
        name=path.stem,
        path=path,
        config=config,
        gmac_720p=count_config_macs(config) / 1e9,
        quality=float(quality) if quality is not None else None,
        quality_int8=float(int8) if int8 is not None else None,
        digest=file_digest(path),
    )


def discover_tiers(folder: Path = WEIGHTS_DIR) -> tuple[list[Tier], dict[str, str]]:
    """(every usable tier in ``folder`` sorted by cost, {file name: why it is unusable})."""
    from streamdenoise.errors import UserError

    tiers, broken = [], {}
    for path in sorted(Path(folder).glob("*.pt")):
        try:
            tiers.append(load_tier(path))
        except (UserError, TypeError, ValueError) as err:
            broken[path.name] = str(err).splitlines()[0]
    return sorted(tiers, key=_rank), broken


def _rank(tier: Tier) -> tuple[bool, float, float, str]:
    quality = tier.quality if tier.quality is not None else 0.0
    return tier.host_motion, tier.gmac_720p, quality, tier.name


def ladder(tiers: list[Tier], still_camera: bool = False) -> list[Tier]:
    """The tiers worth stepping between, cheapest first (see the module docstring).

    ``still_camera``: for a camera that never moves, the recurrent step is the best tier
    whose past is lined up by a global shift (``fixed``), above the per-frame ladder: on a
    still scene it beats ``temporal`` and every per-frame tier (docs/quality.md) and skips
    the dense flow's host work. Its recorded quality, measured on moving video, says nothing
    there; it stands at the best per-frame tier's plus :data:`STILL_SCENE_LEAD_DB`. Above it
    stay the usual ladder's flow-aligned tiers that score higher than that: a still scene is
    lined up by a zero flow as well as by a zero shift, and their score holds
    (``wide-temporal`` beats ``fixed`` on still scenes but at σ = 50). Without a shift tier
    it is the usual ladder.
    """
    still = [t for t in tiers if t.temporal and t.config.motion == "shift"]
    if still_camera and still:
        per_frame = ladder([t for t in tiers if not t.temporal])
        best = _on_still_scenes(max(still, key=lambda t: (t.quality or 0, -t.gmac_720p)), per_frame)
        flow = [t for t in ladder(tiers) if t.temporal and t.config.motion == "flow"]
        return [*per_frame, best, *[t for t in flow if _better(t, best)]]
    rungs: list[Tier] = []
    for tier in sorted(tiers, key=_rank):
        same_kind = rungs and rungs[-1].host_motion == tier.host_motion
        if same_kind and tier.gmac_720p <= rungs[-1].gmac_720p * (1 + SAME_COST):
            if _better(tier, rungs[-1]):  # same cost: keep the better one
                rungs[-1] = tier
            continue
        best = max((r.quality for r in rungs if r.quality is not None), default=None)
        if tier.quality is not None and best is not None and tier.quality <= best:
            continue  # costs more and scores no better than a cheaper tier
        rungs.append(tier)
    return rungs


def _on_still_scenes(tier: Tier, below: list[Tier]) -> Tier:
    """``tier`` scored for still scenes: above the best of ``below`` by the lead measured."""
    top = max((t.quality for t in below if t.quality is not None), default=None)
    if top is None or tier.quality is None:
        return tier
    lead = top + STILL_SCENE_LEAD_DB - tier.quality
    int8 = None if tier.quality_int8 is None else tier.quality_int8 + lead
    return replace(tier, quality=tier.quality + lead, quality_int8=int8)


def _better(tier: Tier, other: Tier) -> bool:
    if tier.quality is None or other.quality is None:
        return tier.gmac_720p > other.gmac_720p  # unknown quality: the costlier one
    return tier.quality > other.quality


def shipped_ladder() -> list[Tier]:
    """The ladder of the weights shipped with this installation."""
    return ladder(discover_tiers()[0])
