"""Provenance: the package version and the git commit a result or checkpoint came from."""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

VERSION = "0.1.0"  # the package's version (steering.__version__; pyproject.toml reads it here)


@cache
def package_version() -> str:
    try:
        return metadata.version("steering")
    except metadata.PackageNotFoundError:  # imported from a source tree without installing
        return VERSION


@cache
def git_commit() -> str | None:
    """The commit of the source tree this package was imported from, ``-dirty`` if modified."""
    root = Path(__file__).resolve().parents[2]  # steering/runtime/ -> the source tree
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def environment() -> dict:
    """The machine and software a measurement ran on (for benchmark results)."""
    import os
    import platform
    import time

    import torch
    import transformers

    cuda = torch.cuda.is_available()
    return {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "device": torch.cuda.get_device_name() if cuda else "cpu",
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "steering": package_version(),
            "git_commit": git_commit(),
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
