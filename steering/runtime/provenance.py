"""Provenance: the package version and the git commit a result or checkpoint came from, and
the fingerprint of the items an evaluation saw."""

from __future__ import annotations

import hashlib
import json
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


def items_digest(records) -> str:
    """A fingerprint of evaluated items in order (each record's ``prompt`` and ``label``), so
    two runs are compared item by item only when they saw the same items."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r["prompt"], r["label"]], ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()
