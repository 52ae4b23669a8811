"""GPU leases: jobs on one machine never share a GPU; a lease ends with its process, however
it ends; without GPUs (or with GPUs already chosen) the command runs as is."""

import os
import signal
import subprocess
import sys
import time

import pytest

from steering import gpu_lease

HOLD = """
import sys, time
from pathlib import Path
from steering import gpu_lease
ids, files = gpu_lease.acquire(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
print(",".join(map(str, ids)), flush=True)
time.sleep(float(sys.argv[4]))
"""


def _holder(n: int, total: int, where, seconds: float) -> tuple[subprocess.Popen, list[int]]:
    """Another job: a process holding a lease on n GPUs for a while."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(n), str(total), str(where), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, [int(i) for i in proc.stdout.readline().strip().split(",")]


def test_a_leased_gpu_is_not_leased_again_until_its_holder_dies(tmp_path):
    holder, held = _holder(2, 3, tmp_path, 60)
    assert held == [0, 1]
    assert gpu_lease.try_acquire(2, 3, tmp_path) is None  # only GPU 2 is free
    ids, files = gpu_lease.try_acquire(1, 3, tmp_path)
    assert ids == [2]
    assert gpu_lease.try_acquire(1, 3, tmp_path) is None  # in this process too
    for f in files:
        f.close()
    holder.send_signal(signal.SIGKILL)  # a killed job releases its GPUs with it
    holder.wait()
    ids, files = gpu_lease.try_acquire(3, 3, tmp_path)
    assert ids == [0, 1, 2]
    for f in files:
        f.close()


def test_acquire_waits_for_a_gpu_to_come_free(tmp_path):
    holder, held = _holder(1, 1, tmp_path, 1.0)
    start = time.monotonic()
    ids, files = gpu_lease.acquire(1, 1, tmp_path, poll_s=0.05)
    assert ids == held == [0]
    assert time.monotonic() - start > 0.3  # it did wait for the holder to finish
    holder.wait()
    for f in files:
        f.close()


def test_more_gpus_than_the_machine_has_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="asks for 3 GPUs but this machine has 2"):
        gpu_lease.acquire(3, 2, tmp_path)


def _lease(*command: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steering.gpu_lease", *command],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def test_without_gpus_to_choose_the_command_runs_as_is():
    show = "import os, sys; print(os.environ.get('CUDA_VISIBLE_DEVICES')); sys.exit(3)"
    proc = _lease("1", "--", sys.executable, "-c", show, CUDA_VISIBLE_DEVICES="5")
    assert (proc.returncode, proc.stdout.strip()) == (3, "5")  # e.g. chosen by Slurm
    if gpu_lease.visible_gpus() == 0:
        proc = _lease("1", "--", sys.executable, "-c", show)
        assert (proc.returncode, proc.stdout.strip()) == (3, "None")


def test_usage_errors_exit_2():
    proc = _lease("two", "--", "true")
    assert proc.returncode == 2 and "usage" in proc.stderr


@pytest.mark.gpu
def test_a_job_sees_only_its_leased_gpu(tmp_path):
    show = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["STEERING_GPU_LOCKS"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "steering.gpu_lease", "1", "--", sys.executable, "-c", show],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stderr
