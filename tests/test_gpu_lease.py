"""GPU leases: jobs on one machine never share a GPU; a lease ends with its process, however
it ends; without GPUs (or with GPUs already chosen) the command runs as is."""

import os
import signal
import subprocess
import sys
import time

import pytest

from steering.runtime import gpu_lease

LEASE = "steering.runtime.gpu_lease"  # python -m LEASE <n> -- <command>
HOLD = """
import sys, time
from pathlib import Path
from steering.runtime import gpu_lease
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
        [sys.executable, "-m", LEASE, *command],
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
        [sys.executable, "-m", LEASE, "1", "--", sys.executable, "-c", show],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stderr


SHOW_ASKED = "import os; print(os.environ.get('STEERING_GPUS_REQUESTED'))"


@pytest.mark.parametrize("hidden", ["", "-1", "NoDevFiles"])
def test_a_gpu_job_with_every_gpu_hidden_says_so_and_runs_on(hidden):
    """CUDA_VISIBLE_DEVICES set but empty was taken as "GPUs chosen" and the job silently ran
    on the CPU: now one line says so and what to check, and the job still runs."""
    proc = _lease("2", "--", sys.executable, "-c", SHOW_ASKED, CUDA_VISIBLE_DEVICES=hidden)
    assert proc.returncode == 0 and proc.stdout.strip() == "2"  # the command learns it asked
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("gpu_lease: this job asks for 2 GPU(s), and CUDA_VISIBLE_DEVICES=")
    assert "hides every GPU" in line and "unset CUDA_VISIBLE_DEVICES" in line


def test_a_gpu_job_given_fewer_gpus_than_it_asked_for_says_so():
    proc = _lease("2", "--", sys.executable, "-c", SHOW_ASKED, CUDA_VISIBLE_DEVICES="3")
    assert proc.returncode == 0
    assert "asks for 2 GPU(s), and CUDA_VISIBLE_DEVICES='3' names 1" in proc.stderr
    assert _lease("1", "--", "true", CUDA_VISIBLE_DEVICES="3").stderr == ""  # got what it asked


def test_a_gpu_job_on_a_machine_without_nvidia_smi_says_it_runs_on_the_cpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = os.path.dirname(sys.executable)  # python, and no nvidia-smi
    proc = subprocess.run(
        [sys.executable, "-m", LEASE, "1", "--", sys.executable, "-c", SHOW_ASKED],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "1"
    assert "asks for 1 GPU(s), and nvidia-smi is not on PATH: it runs on the CPU" in proc.stderr
    quiet = _lease("0", "--", "true", CUDA_VISIBLE_DEVICES="")
    assert quiet.stderr == ""  # a job that asks for no GPU hears nothing


def test_the_job_log_says_when_a_gpu_job_computes_on_the_cpu(monkeypatch, capsys):
    monkeypatch.setenv(gpu_lease.REQUESTED, "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    gpu_lease.say_if_on_cpu("cpu", "trains")
    assert "warning: this job asked for 1 GPU(s) and trains on the CPU" in capsys.readouterr().err
    gpu_lease.say_if_on_cpu("cuda", "trains")
    monkeypatch.setenv(gpu_lease.REQUESTED, "0")
    gpu_lease.say_if_on_cpu("cpu", "trains")
    assert capsys.readouterr().err == ""  # on its GPU, or never asked for one: nothing
