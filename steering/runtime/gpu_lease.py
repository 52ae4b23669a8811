"""GPU leases for local runs: each job gets GPUs of its own, by CUDA_VISIBLE_DEVICES.

Snakemake's ``--resources gpu=N`` bounds how many GPUs the running jobs ask for in total, but
does not say which GPUs a job gets: without this every job would use GPU 0. The train and
evaluate rules therefore run

    python -m steering.runtime.gpu_lease <n> -- <command ...>

which takes ``n`` free GPUs (an exclusive ``flock`` on one lock file per GPU, released by the
kernel when the process ends, however it ends), runs the command with
``CUDA_VISIBLE_DEVICES`` set to them, and exits with its exit code. Where the GPUs are already
chosen (``CUDA_VISIBLE_DEVICES`` set, e.g. by Slurm) or there are none (no ``nvidia-smi``),
the command runs unchanged; when that leaves a job fewer GPUs than it asked for (none visible,
or ``CUDA_VISIBLE_DEVICES`` set but empty), one line says so and what to check, and the
command's own log says it again when it trains or evaluates on the CPU (``say_if_on_cpu``).
Imports no torch: it must not touch CUDA before choosing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

POLL_S = 1.0


def lock_dir() -> Path:
    """Shared by every job of this user on this machine (``STEERING_GPU_LOCKS`` overrides)."""
    default = Path(tempfile.gettempdir()) / f"steering-gpu-locks-{os.getuid()}"
    return Path(os.environ.get("STEERING_GPU_LOCKS", default))


def visible_gpus() -> int:
    """How many GPUs ``nvidia-smi -L`` lists (0 without it)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in proc.stdout.splitlines())


def try_acquire(n: int, total: int, where: Path) -> tuple[list[int], list[IO]] | None:
    """Lock ``n`` of GPUs 0..total-1 that no other lease holds; None if fewer are free."""
    where.mkdir(parents=True, exist_ok=True)
    ids, files = [], []
    for gpu in range(total):
        f = open(where / f"gpu{gpu}.lock", "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        ids.append(gpu)
        files.append(f)
        if len(ids) == n:
            return ids, files
    for f in files:
        f.close()  # closing releases the lock
    return None


def acquire(n: int, total: int, where: Path, poll_s: float = POLL_S) -> tuple[list[int], list]:
    """Wait until ``n`` GPUs are free (another workflow may hold some), then lock them."""
    if n > total:
        raise ValueError(f"a job asks for {n} GPUs but this machine has {total}")
    waited = False
    while (got := try_acquire(n, total, where)) is None:
        if not waited:
            print(f"gpu_lease: waiting for {n} free GPU(s) of {total}", file=sys.stderr)
            waited = True
        time.sleep(poll_s)
    return got


# What the lease tells its command: how many GPUs the job asked for (``say_if_on_cpu``).
REQUESTED = "STEERING_GPUS_REQUESTED"
# CUDA_VISIBLE_DEVICES values that hide every GPU: empty, "-1", and Slurm's "NoDevFiles".
HIDDEN = ("", "-1", "NoDevFiles")


def shortfall(n: int, total: int, visible: str | None) -> str | None:
    """One line when a job that asks for ``n`` GPUs will get fewer (or none), saying what to
    check; None when it gets them. ``visible``: ``CUDA_VISIBLE_DEVICES`` (None: unset)."""
    if n < 1:
        return None
    asks = f"gpu_lease: this job asks for {n} GPU(s)"
    if visible is not None and visible.strip() in HIDDEN:
        return (
            f"{asks}, and CUDA_VISIBLE_DEVICES={visible!r} hides every GPU from it: it runs on "
            "the CPU. Check that the scheduler gave the job its GPUs (Slurm: the gpu resource "
            "becomes --gpus), or unset CUDA_VISIBLE_DEVICES"
        )
    if visible is not None:
        given = len([v for v in visible.split(",") if v.strip()])
        if given < n:
            return (
                f"{asks}, and CUDA_VISIBLE_DEVICES={visible!r} names {given}: check the "
                "scheduler's GPU request (Slurm: --gpus) or the variable"
            )
        return None
    if total == 0:
        found = "lists no GPU" if shutil.which("nvidia-smi") else "is not on PATH"
        return (
            f"{asks}, and nvidia-smi {found}: it runs on the CPU. On a GPU machine, check "
            "the NVIDIA driver (nvidia-smi -L); on a CPU machine this is expected"
        )
    return None


def run(n: int, command: list[str]) -> int:
    """Run ``command`` on ``n`` leased GPUs (or as is, see the module docstring)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    total = visible_gpus() if visible is None and n >= 1 else 0
    note = shortfall(n, total, visible)
    if note:
        print(note, file=sys.stderr, flush=True)
    os.environ[REQUESTED] = str(n)
    if n < 1 or total == 0 or visible is not None:
        os.execvp(command[0], command)  # nothing to choose: become the command
    ids, files = acquire(n, total, lock_dir())
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(map(str, ids))}
    child = subprocess.Popen(command, env=env)
    # Snakemake stops jobs with SIGTERM/SIGINT: pass them on and wait for the child's exit.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _frame: child.send_signal(s))
    try:
        rc = child.wait()
        return 128 - rc if rc < 0 else rc  # killed by a signal: the shell's convention
    finally:
        for f in files:
            f.close()


def say_if_on_cpu(device_type: str, does: str) -> None:
    """One log line when a job that asked for GPUs (run through a lease) ``does`` its work on
    the CPU after all: a GPU job that silently ran on the CPU would take days, unexplained."""
    asked = int(os.environ.get(REQUESTED) or 0)
    if asked >= 1 and device_type == "cpu":
        print(
            f"warning: this job asked for {asked} GPU(s) and {does} on the CPU (no GPU is "
            f"visible to it; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
            "see the gpu_lease line above for what to check",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        usage = "usage: python -m steering.runtime.gpu_lease <n gpus> -- <command ...>"
        print(usage, file=sys.stderr)
        return 2
    return run(int(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
