"""The machine record stored with every suite run, composed from ``streamdenoise devices``."""

from __future__ import annotations

import os
import platform

from streamdenoise.commands.devices import accelerators, versions
from streamdenoise.models.weights import git_commit


def machine_info() -> dict:
    """CPU, GPUs, library versions, git commit and the load at the start of the run."""
    found = accelerators()
    return {
        "cpu": found["cpu"],
        "gpus": [f"{g['name']} ({g['memory_gib']} GiB)" for g in found["cuda"]],
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions(),
        "git_commit": git_commit(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }
