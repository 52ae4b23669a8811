"""Real small and read-only file systems for the I/O fault tests.

As root, a tmpfs is mounted by the test (``mount -t tmpfs``) and unmounted after it; without
root a directory made read-only with chmod stands in where that binds, and a full disk cannot
be made, so those tests skip and say why.
"""

import contextlib
import functools
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TMPFS_BYTES = 64 * 1024


@functools.cache
def mount_reason() -> str | None:
    """Why no tmpfs can be mounted here (None: it can)."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    with tempfile.TemporaryDirectory() as d:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", d], capture_output=True
        )
        if done.returncode != 0:
            return f"mount -t tmpfs failed: {done.stderr.decode().strip()}"
        subprocess.run(["umount", d], check=True)
    return None


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={TMPFS_BYTES},{options}".rstrip(",")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@contextlib.contextmanager
def full_tmpfs(where: Path, free: int) -> Iterator[Path]:
    """A 64 KiB tmpfs at ``where`` holding one file, ``filler``, that leaves ``free`` bytes."""
    reason = mount_reason()
    if reason:
        pytest.skip(f"a full file system needs a tmpfs: {reason}")
    with tmpfs(where, "") as mnt:
        (mnt / "filler").write_bytes(b"\0" * (TMPFS_BYTES - free))
        assert abs(os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize - free) < 4096
        yield mnt


@contextlib.contextmanager
def read_only_dir(where: Path) -> Iterator[Path]:
    """An empty directory nothing can be written to: a read-only tmpfs, else chmod 555."""
    if mount_reason() is None:
        with tmpfs(where, "ro") as mnt:
            yield mnt
        return
    where.mkdir(parents=True, exist_ok=True)
    where.chmod(0o555)
    try:
        try:
            (where / "probe").write_text("x")
        except OSError:
            yield where
        else:
            (where / "probe").unlink()
            pytest.skip(f"chmod does not bind here and {mount_reason()}")
    finally:
        where.chmod(0o755)
