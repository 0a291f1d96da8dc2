"""Where model artifacts live: the ONNX exports shipped in the package, and the user cache for
exports made on the fly and for TensorRT plans.

Each exports folder has a ``manifest.json`` keyed by the SHA-256 of the weights file an export
was made from, with the model's architecture config. A runtime that runs the export (ONNX
Runtime, OpenVINO, TensorRT) finds it and learns the model's shape from the manifest, without
loading the weights through torch; retrained weights have another digest, so they never meet
a stale export (they are exported again, into the cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Exports shipped in the wheel (made with ``streamdenoise export --out`` this folder).
PACKAGED = Path(__file__).resolve().parent / "models" / "exports"
MANIFEST = "manifest.json"
INT8_SUFFIX = "-int8.onnx"


def cache_dir() -> Path:
    """``$STREAMDENOISE_CACHE_DIR``, else the platform's user cache folder (on Linux
    ``$XDG_CACHE_HOME/streamdenoise``, by default ``~/.cache/streamdenoise``)."""
    override = os.environ.get("STREAMDENOISE_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("streamdenoise", appauthor=False)


def onnx_cache() -> Path:
    return cache_dir() / "onnx"


def tensorrt_cache() -> Path:
    """Default folder of built TensorRT plans (``--engine-cache`` overrides it)."""
    return cache_dir() / "tensorrt"


def onnx_filename(model: str, net_hash: str) -> str:
    return f"{model}-{net_hash}.onnx"


def int8_filename(float_name: str) -> str:
    """``temporal-<hash>.onnx`` → ``temporal-<hash>-int8.onnx``."""
    return float_name.removesuffix(".onnx") + INT8_SUFFIX


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Export:
    """An ONNX export found for a weights file, and what the runtime needs to know of it."""

    path: Path
    model: str
    #: Hash of the architecture and weight values (part of the file name and the plan cache key).
    net_hash: str
    #: The architecture (``NetConfig.to_dict()``).
    config: dict[str, Any]


def search_path() -> tuple[Path, ...]:
    return PACKAGED, onnx_cache()


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def find_export(weights: Path, int8: bool = False) -> Export | None:
    """The export made from exactly this weights file (the int8 one if asked), or None."""
    try:
        digest = file_sha256(weights)
    except OSError:
        return None
    for folder in search_path():
        entry = read_manifest(folder).get(digest)
        name = entry and entry.get("int8" if int8 else "onnx")
        if name and (folder / name).is_file():
            return Export(folder / name, entry["model"], entry["hash"], entry["config"])
    return None


def find_file(name: str) -> Path | None:
    """An export file by its name (``<model>-<hash>[-int8].onnx``) in the shipped folder or the
    cache."""
    for folder in search_path():
        if (folder / name).is_file():
            return folder / name
    return None


def record_export(
    onnx_path: Path, weights: Path, model: str, net_hash: str, config: dict[str, Any]
) -> None:
    """Enter ``onnx_path`` (float or int8) in its folder's manifest under the digest of
    ``weights``; best effort: a folder that cannot be written keeps the export usable by name."""
    folder = onnx_path.parent
    manifest = read_manifest(folder)
    entry = manifest.setdefault(file_sha256(weights), {})
    entry.update(model=model, hash=net_hash, config=config)
    entry["int8" if onnx_path.name.endswith(INT8_SUFFIX) else "onnx"] = onnx_path.name
    write_manifest(folder, manifest)


def carry_exports(old_digest: str, weights: Path) -> None:
    """Re-key the exports of a weights file whose metadata alone was rewritten (same network,
    so the same exports) under its new digest, in every folder that lists them."""
    new_digest = file_sha256(weights)
    for folder in search_path():
        manifest = read_manifest(folder)
        if old_digest in manifest:
            manifest[new_digest] = manifest.pop(old_digest)
            write_manifest(folder, manifest)


def write_manifest(folder: Path, manifest: dict[str, dict[str, Any]]) -> None:
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        tmp.replace(folder / MANIFEST)
