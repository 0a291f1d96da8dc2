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
    """Every shipped model tier: its cost per 1280×720 frame (counted from its network
    config), validation PSNR, place on ``--model auto``'s ladder, the speeds calibration
    measured on this machine and the busy time per frame live runs saw while it streamed
    (from the calibration cache; none until a run calibrated or streamed)."""
    from streamdenoise.auto.calibration import CalibrationCache, machine_key, parse_seen_label
    from streamdenoise.models.tiers import discover_tiers, ladder

    tiers, broken = discover_tiers()
    rungs = ladder(tiers)
    still = [t.name for t in ladder(tiers, still_camera=True)]  # (its top step is rescored)
    machine = machine_key("cpu")
    here = [
        e
        for e in CalibrationCache().entries()
        if {k: v for k, v in e["key"]["machine"].items() if k != "gpu"} == machine
    ]
    measured = [e for e in here if e["key"].get("kind") == "tier"]
    streamed = [
        (e["key"], *parse_seen_label(label), seen)
        for e in here
        if e["key"].get("kind") == "pipeline"
        for label, seen in e["result"].get("rungs", {}).items()
    ]
    found: dict[str, dict] = {}
    for tier in tiers:
        info = tier.describe()
        info["ladder_rank"] = rungs.index(tier) + 1 if tier in rungs else None
        info["still_camera_ladder_rank"] = (
            still.index(tier.name) + 1 if tier.name in still else None
        )
        info["calibrated"] = [
            {
                "runtime": e["key"]["runtime"]["runtime"],
                "device": e["key"]["runtime"]["device"],
                "gpu": e["key"]["machine"].get("gpu"),
                "precision": e["key"]["precision"],
                "size": e["key"]["size"],
                "fps": e["result"]["fps"],
                "ms_per_frame": e["result"]["ms_per_frame"],
                "measured_at": e["result"].get("measured_at"),
            }
            for e in measured
            if e["key"]["tier"] == tier.name and e["key"]["weights"] == tier.digest
        ]
        info["streamed"] = [
            {
                "runtime": key["runtime"]["runtime"],
                "precision": precision,
                "size": key["size"],
                "beside": beside,
                "busy_ms_per_frame": seen["busy_ms"],
                "checks": seen.get("checks"),
                "at": seen.get("at"),
            }
            for key, name, precision, beside, seen in streamed
            if name == tier.name and seen.get("weights") == tier.digest
        ]
        found[tier.name] = info
    for name, reason in broken.items():
        found[name] = {"error": reason}
    return found


def default_run() -> dict:
    """What ``streamdenoise run SOURCE`` with no backend options would use here (for
    ``auto``: the runtime, precision and device the tiers run with)."""
    from streamdenoise.backends import create_backend
    from streamdenoise.errors import UserError
    from streamdenoise.runtime import choose_backend

    backend, model = choose_backend()
    try:
        probe = model
        if model == "auto":
            from streamdenoise.models.tiers import shipped_ladder

            probe = shipped_ladder()[-1].model_arg
        denoiser = create_backend(backend, **({"model": probe} if probe else {}))
    except UserError as err:
        return {"backend": backend, "model": model, "error": str(err)}
    try:
        info = denoiser.describe()
    finally:
        denoiser.close()
    found = {key: info.get(key) for key in ("backend", "model", "precision", "device")}
    return {**found, "model": model} if model else found


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


def models_table(found: dict[str, dict]):
    """Model tiers, cheapest first, with the fps calibration measured here."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title="model tiers (--model auto climbs the ladder)",
        title_justify="left",
        caption="+ host: motion is measured on the host CPU, outside the GMAC",
        caption_justify="left",
    )
    for column in ("model", "GMAC/720p", "val PSNR dB", "ladder", "measured here"):
        table.add_column(column)
    for name, info in found.items():
        if "error" in info:
            table.add_row(name, "", "", "", f"[red]unusable ({escape(info['error'])})[/]")
            continue
        runs = ", ".join(
            f"{c['fps']:g} fps {c['size']} {c['runtime']} {c['precision']}"
            + (f" on {c['gpu']}" if c.get("gpu") else "")
            for c in info["calibrated"]
        )
        seen = ", ".join(
            f"busy {s['busy_ms_per_frame']:g} ms/frame streaming {s['size']} {s['runtime']} "
            f"{s['precision']} beside {s['beside']}"
            for s in info["streamed"]
        )
        runs = "; ".join(part for part in (runs, seen) if part)
        table.add_row(
            name,
            f"{info['gmac_per_720p_frame']:.2f}" + (" + host" if info["host_motion"] else ""),
            _quality(info),
            _rank(info),
            runs or "not calibrated yet",
        )
    return table


def _rank(info: dict) -> str:
    if info["ladder_rank"]:
        return str(info["ladder_rank"])
    if info["still_camera_ladder_rank"]:
        return f"{info['still_camera_ladder_rank']} with --still-camera"
    return "off (pin by name)"


def _quality(info: dict) -> str:
    if info["quality_psnr_db"] is None:
        return "-"
    int8 = info.get("quality_psnr_db_int8")
    return f"{info['quality_psnr_db']:.2f}" + (f" (int8 {int8:.2f})" if int8 is not None else "")


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
    console.print(models_table(report["models"]))
    default = report["default_run"]
    console.print(
        f"default for `run`: {default['backend']}"
        + (f", model {default['model']}" if default.get("model") else "")
        + (
            f", {default['precision']} on {default['device']}"
            + (
                " (live sources adapt; files run the strongest tier)"
                if default.get("model") == "auto"
                else ""
            )
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
