"""The markdown summary: every table is rendered straight from the results JSON.

Number formats are fixed here (``fmt``) so a test can re-derive each table row from the
JSON and compare it with the file.
"""

from __future__ import annotations

from pathlib import Path


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def e2e_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        lat = r.get("latency_ms") or {}
        rows.append(
            [
                r["contender"],
                r["size"],
                str(r.get("frames", 0)),
                fmt(r.get("fps")),
                fmt(lat.get("p50")),
                fmt(lat.get("p95")),
                fmt(lat.get("p99")),
                fmt(r.get("cpu_percent"), 0),
                r.get("note", ""),
            ]
        )
    return rows


def live_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        lat = r.get("latency_ms") or {}
        rows.append(
            [
                r["contender"],
                str(r.get("frames_out", 0)),
                fmt(r.get("fps_in")),
                fmt(r.get("fps_out")),
                fmt(100 * r["drop_rate"] if r.get("drop_rate") is not None else None),
                fmt(lat.get("p50")),
                fmt(lat.get("p95")),
                fmt(lat.get("p99")),
                r.get("note", ""),
            ]
        )
    return rows


def quality_columns(results: list[dict]) -> list[str]:
    """Noise settings in order: AWGN σ ascending, then realistic."""
    awgn = sorted({r["sigma"] for r in results if r["noise"] == "awgn"})
    cols = [f"σ={s:g}" for s in awgn]
    if any(r["noise"] == "realistic" for r in results):
        cols.append("realistic")
    return cols


def quality_key(r: dict) -> str:
    return "realistic" if r["noise"] == "realistic" else f"σ={r['sigma']:g}"


def quality_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    cols = quality_columns(results)
    contenders = list(dict.fromkeys(r["contender"] for r in results))
    cells = {(r["contender"], quality_key(r)): r for r in results}
    rows = []
    for name in contenders:
        row = [name]
        for col in cols:
            r = cells.get((name, col))
            row.append("–" if r is None else f"{fmt(r.get('psnr'), 2)} / {fmt(r.get('ssim'), 3)}")
        rows.append(row)
    return ["contender", *cols], rows


def speed_rows(rows: list[dict]) -> list[list[str]]:
    return [
        [
            r["contender"],
            r["kind"],
            fmt(r.get("psnr"), 2),
            fmt(r.get("ssim"), 3),
            fmt(r.get("flicker"), 2),
            fmt(r.get("fps")),
        ]
        for r in rows
    ]


def machine_lines(machine: dict) -> list[str]:
    """The machine record of ``streamdenoise.lab.speed.machine_record`` as a bullet list."""
    cpu = machine.get("cpu", {})
    gpus = machine.get("gpus") or []
    versions = machine.get("versions", {})
    dirty = " (with uncommitted changes)" if machine.get("git_dirty") else ""
    return [
        f"- CPU: {cpu.get('model', '?')}, {cpu.get('cores', '?')} logical cores "
        f"({machine.get('physical_cores', '?')} physical), flags: "
        + (", ".join(cpu.get("flags", [])) or "none of interest"),
        "- GPU: " + (", ".join(gpus) if gpus else "none"),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        f"- Python {machine.get('python', '?')}, {machine.get('platform', '?')}",
        f"- Git commit: {machine.get('git_commit', '?')}{dirty}",
        f"- Load average (1 min) at start: {machine.get('load_avg_1m', '?')}",
    ]


E2E_HEADER = [
    "contender",
    "size",
    "frames",
    "fps",
    "e2e p50 ms",
    "p95 ms",
    "p99 ms",
    "CPU %",
    "note",
]
LIVE_HEADER = [
    "contender",
    "frames out",
    "fps in",
    "fps out",
    "dropped %",
    "e2e p50 ms",
    "p95 ms",
    "p99 ms",
    "note",
]
SPEED_HEADER = ["contender", "kind", "PSNR σ=25 dB", "SSIM σ=25", "flicker σ=25", "fps"]


def render(results: dict) -> str:
    """The whole summary.md text."""
    out = [
        "# streamdenoise benchmark suite",
        "",
        f"Command: `{results['command']}` — {results['created']}, "
        f"{results['duration_s']:.0f} s{' (quick smoke run)' if results['quick'] else ''}.",
        "",
        "## Machine",
        "",
        *machine_lines(results["machine"]),
        "",
    ]
    skipped = [c for c in results["contenders"] if not c["available"]]
    if skipped:
        out += [
            "Not measured here: " + "; ".join(f"{c['label']} ({c['reason']})" for c in skipped),
            "",
        ]
    e2e = results["e2e"]
    out += [
        "## End-to-end pipeline (decode → denoise → x264 encode)",
        "",
        e2e["protocol"],
        "",
        *table(E2E_HEADER, e2e_rows(e2e["results"])),
        "",
    ]
    live = results["live"]
    out += [
        f"## Live latency ({live['source']}, {live['size']} at {live['fps']:g} fps, "
        f"policy {live['policy']})",
        "",
        live["protocol"],
        "",
        *table(LIVE_HEADER, live_rows(live["results"])),
        "",
    ]
    quality = results["quality"]
    header, rows = quality_rows(quality["results"])
    out += ["## Quality (PSNR dB / SSIM)", "", quality["protocol"], "", *table(header, rows), ""]
    speed = results["quality_vs_speed"]
    out += [
        "## Quality vs speed",
        "",
        speed["protocol"],
        "",
        *table(SPEED_HEADER, speed_rows(speed["results"])),
        "",
    ]
    out += ["## Pictures", ""]
    out += [f"![{name}]({name})" for name in results["outputs"]["images"]]
    if results["outputs"].get("video"):
        out += [
            "",
            f"Side-by-side video: [{results['outputs']['video']}]({results['outputs']['video']})",
        ]
    return "\n".join(out) + "\n"


def write(results: dict, path: Path) -> Path:
    path.write_text(render(results), encoding="utf-8")
    return path


def save_results(out: Path, name: str, label: str, doc: dict, render, plot) -> None:
    """``NAME[_LABEL].json`` / ``.md`` / ``.png`` under ``out``: a benchmark's doc, its
    markdown (``render(doc)``, echoed) and its picture (``plot(doc, path)``)."""
    from streamdenoise.lab.speed import write_report

    stem = out / (name + (f"_{label}" if label else ""))
    write_report(stem, doc, render(doc))
    plot(doc, stem.with_suffix(".png"))


def plot_both_sets(path: Path, curves: list[tuple], subtitle: str, xlabel: str) -> None:
    """Validation PSNR against training time, Vid4 crops beside the fast-motion crops:
    ``curves`` holds ``(label, minutes, vid4_psnr, motion_psnr)`` per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for label, minutes, *sets in curves:
        for axis, values in zip(axes, sets, strict=True):
            axis.plot(minutes, values, label=label)
    for axis, title in zip(axes, ("Vid4 crops", "fast-motion crops"), strict=True):
        axis.set_title(f"{title}, {subtitle}")
        axis.set_xlabel(xlabel)
        axis.set_ylabel("PSNR dB")
        axis.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
