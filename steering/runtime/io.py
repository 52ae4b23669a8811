"""Atomic file output: a file is either complete or absent, never half-written.

Writers create ``<name>.tmp-<pid>`` beside the target and ``os.replace`` it into place, so a
killed process leaves at most a stray temp file that no reader (nor Snakemake) takes as output.
A write the file system refuses (no space, read-only, ...) raises
``steering.runtime.storage.StorageError`` naming the target, with the temp file removed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from steering.runtime.storage import follow_umask, writing


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``target``, on error it is deleted."""
    target = Path(target)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        with writing(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            follow_umask(tmp)  # safetensors writes 0600 whatever the umask
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):  # never hide the write's own error
            tmp.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def json_text(obj: Any) -> str:
    """How every JSON output of the package is written: indented, keys sorted."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(target: str | Path, obj: Any) -> Path:
    return write_text(target, json_text(obj))
