"""``streamdenoise devices``: what can run here — backends, accelerators, cameras, versions."""

from __future__ import annotations

import argparse
import glob
import importlib
from dataclasses import asdict
from importlib import metadata

from streamdenoise import hardware


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")


def accelerators() -> dict:
    """The CPU (model, cores, the instruction sets that decide backend speed) and CUDA GPUs."""
    return {
        "cpu": hardware.cpu().to_dict(),
        "cuda": [asdict(device) for device in hardware.cuda_devices()],
    }


def backends() -> dict[str, str | None]:
    """Backend name -> None when usable, else the one-line reason it is not."""
    from streamdenoise.backends import BACKENDS, unavailable_reason

    found = {}
    for name in BACKENDS:
        try:
            found[name] = unavailable_reason(name)
        except Exception as err:  # one broken backend must not hide the others
            found[name] = f"cannot be loaded: {type(err).__name__}: {err}"
    return found


def models() -> dict[str, dict]:
    """Shipped models with their cost per 1280×720 frame (counted by a real forward pass)."""
    from streamdenoise.errors import UserError
    from streamdenoise.models import MODEL_NAMES
    from streamdenoise.models.macs import count_macs

    found: dict[str, dict] = {}
    for name in MODEL_NAMES:
        try:
            found[name] = {"gmac_per_720p_frame": round(count_macs(name, 1280, 720) / 1e9, 2)}
        except UserError as err:
            found[name] = {"error": str(err)}
    return found


def default_run() -> dict:
    """What ``streamdenoise run SOURCE`` with no backend options would use here."""
    from streamdenoise.backends import create_backend
    from streamdenoise.errors import UserError
    from streamdenoise.runtime import choose_backend

    backend, model = choose_backend()
    try:
        denoiser = create_backend(backend, **({"model": model} if model else {}))
    except UserError as err:
        return {"backend": backend, "model": model, "error": str(err)}
    try:
        info = denoiser.describe()
    finally:
        denoiser.close()
    return {key: info.get(key) for key in ("backend", "model", "precision", "device")}


def cameras() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


def versions() -> dict[str, str]:
    found = {}
    for dist, module in (
        ("torch", "torch"),
        ("av", "av"),
        ("opencv", "cv2"),
        ("onnxruntime", "onnxruntime"),
        ("openvino", "openvino"),
        ("tensorrt", "tensorrt"),
        ("numpy", "numpy"),
    ):
        try:
            mod = importlib.import_module(module)
        except Exception:  # absent or broken optional package: just not listed
            continue
        found[dist] = str(getattr(mod, "__version__", "") or _dist_version(dist))
    try:
        import av

        libavcodec = ".".join(map(str, av.library_versions["libavcodec"]))
        found["ffmpeg (in PyAV)"] = f"libavcodec {libavcodec}"
    except (ImportError, KeyError):
        pass
    return found


def _dist_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def run(args: argparse.Namespace) -> int:
    report = {
        "backends": backends(),
        "models": models(),
        "default_run": default_run(),
        "accelerators": accelerators(),
        "cameras": cameras(),
        "versions": versions(),
    }
    if args.json:
        import json

        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title="backends", title_justify="left")
    table.add_column("backend")
    table.add_column("status")
    for name, reason in report["backends"].items():
        table.add_row(
            name, "[green]available[/]" if reason is None else f"[red]{escape(reason)}[/]"
        )
    console.print(table)
    console.print(
        "models: "
        + ", ".join(
            f"{name} {info['gmac_per_720p_frame']} GMAC per 1280x720 frame"
            if "error" not in info
            else f"{name} unusable ({escape(info['error'])})"
            for name, info in report["models"].items()
        )
    )
    default = report["default_run"]
    console.print(
        f"default for `run`: {default['backend']}"
        + (f", model {default['model']}" if default.get("model") else "")
        + (
            f", {default['precision']} on {default['device']}"
            if "error" not in default
            else f" [red]unusable ({escape(default['error'])})[/]"
        )
    )
    cpu = report["accelerators"]["cpu"]
    console.print(
        f"CPU: {cpu['model']} · {cpu['cores']} cores · flags: "
        f"{', '.join(cpu['flags']) or 'none of interest'}"
    )
    gpus = report["accelerators"]["cuda"]
    console.print(
        "CUDA: "
        + (", ".join(f"{g['index']}: {g['name']} ({g['memory_gib']} GiB)" for g in gpus) or "none")
    )
    console.print("cameras: " + (", ".join(report["cameras"]) or "none found"))
    console.print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    return 0
