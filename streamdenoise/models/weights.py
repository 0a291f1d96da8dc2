"""Weights files: a torch ``state_dict`` plus the metadata needed to rebuild and trust it.

A file holds ``{"format", "version", "name", "config", "state_dict", "metadata"}``; metadata
records the training command, data, git commit and final validation metrics. Loading checks
every part and turns any problem into one readable :class:`UserError` line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch

from streamdenoise.errors import UserError
from streamdenoise.models.nets import NetConfig, UNetDenoiser, build_net

FORMAT = "streamdenoise-weights"
VERSION = 1


def git_commit(repo: Path | None = None) -> str:
    """Commit of the source tree the model was trained from ("unknown" outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def save_weights(path: Path, name: str, net: UNetDenoiser, metadata: dict[str, Any]) -> None:
    state = {k: v.detach().cpu().float().contiguous() for k, v in net.state_dict().items()}
    blob = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "config": net.config.to_dict(),
        "state_dict": state,
        "metadata": metadata,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_whole(blob, path)


def save_whole(blob: dict[str, Any], path: Path) -> None:
    """``torch.save`` written beside ``path`` and renamed over it: a reader, a crash or a
    second Ctrl+C mid-write finds the previous file whole, and no partial file stays."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(blob, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_weights_file(path: Path) -> dict[str, Any]:
    """The raw, validated contents of a weights file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt zip/pickle data
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(
            f"weights file {path} is unreadable (truncated or corrupt?): {reason}"
        ) from err
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise UserError(f"{path} is not a streamdenoise weights file")
    if blob.get("version") != VERSION:
        raise UserError(
            f"weights file {path} has version {blob.get('version')}, expected {VERSION}"
        )
    for key in ("name", "config", "state_dict", "metadata"):
        if key not in blob:
            raise UserError(f"weights file {path} lacks its {key!r} entry")
    return blob


def load_weights(path: Path, expect_temporal: bool | None = None) -> tuple[UNetDenoiser, dict]:
    """Rebuild the network from a weights file; returns (net in eval mode, file contents)."""
    blob = read_weights_file(path)
    try:
        config = NetConfig.from_dict(blob["config"])
        net = build_net(config)
        net.load_state_dict(blob["state_dict"], strict=True)
    except (TypeError, ValueError, RuntimeError) as err:
        first = str(err).splitlines()[0]
        raise UserError(f"weights file {path} does not match its architecture: {first}") from err
    if expect_temporal is not None and config.temporal != expect_temporal:
        kind = "temporal" if expect_temporal else "spatial"
        raise UserError(f"weights file {path} does not hold a {kind} model")
    return net.eval(), blob
