"""A private single-node Slurm cluster (slurmctld + slurmd + munge) for one test session.

Debian's slurmctld/slurmd/slurm-client/munge packages, installed on demand. Nothing under
/etc/slurm is read or written: slurm.conf and gres.conf, state, spool, logs and pid files all
live in a directory of our own. The daemons get it with `-f`, every client with SLURM_CONF
plus wrapper scripts first on PATH (see `env`), and the TCP ports are picked free, so a
system Slurm on the same host neither sees nor clashes with this one. The node has one fake
GPU (gres File=/dev/null), so `--gpus=1` jobs schedule on a machine without one. Accounting
is off (no slurmdbd): query jobs with squeue/scontrol, not sacct, and give
snakemake-executor-plugin-slurm `--slurm-status-command squeue` (with sacct it waits forever).

The daemons run in the foreground (-D) under subprocess.Popen, so their pids are known
exactly; `stop()` ends only what `start()` started, by pid, never by name. munged is shared
with the host: a running one is reused and left alone.

Tested with Debian 12 (Slurm 22.05, munge 0.5.15): install ~9 s once, cluster up in ~2 s.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CPU_ONLY

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "sinfo", "sbatch")
CLIENTS = ("srun", "sbatch", "salloc", "squeue", "scontrol", "sinfo", "scancel", "sacct")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
MUNGE_PID = MUNGE_RUN / "munged.pid"  # munged's default; /run/munge is the munge user's
PARTITION = "debug"
GPUS = 1
MIN_JOB_AGE = 600  # s: finished jobs stay visible to squeue/scontrol (no slurmdbd to ask)


def _skip(reason: str) -> None:
    """Skip, or fail where the caller insists on Slurm (STEERING_REQUIRE_SLURM=1, e.g. in CI)."""
    if os.environ.get("STEERING_REQUIRE_SLURM") == "1":
        pytest.fail(f"Slurm test cluster unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def _run(*cmd: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _installed(package: str) -> bool:
    proc = _run("dpkg-query", "-W", "-f=${Status}", package)
    return proc.returncode == 0 and proc.stdout.strip() == "install ok installed"


def ensure_packages() -> None:
    """Root, apt and the Slurm/munge packages, installed if missing; skip when impossible."""
    if os.geteuid() != 0:
        _skip("needs root: the Slurm daemons and munged are started as system users")
    if not (shutil.which("apt-get") and shutil.which("dpkg-query")):
        _skip("needs apt-get/dpkg (Debian or Ubuntu) to install Slurm")
    missing = [p for p in PACKAGES if not _installed(p)]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = (
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            *missing,
        )
        proc = _run(*install, timeout=600, env=env)
        if proc.returncode != 0:  # stale or absent package lists: refresh once, then retry
            _run("apt-get", "update", "-qq", timeout=300, env=env)
            proc = _run(*install, timeout=600, env=env)
        if proc.returncode != 0:
            _skip(f"cannot install {' '.join(missing)}: {(proc.stdout + proc.stderr)[-1500:]}")
    absent = [b for b in BINARIES if not shutil.which(b)]
    if absent:
        _skip(f"Slurm packages installed but {', '.join(absent)} missing")
    if not MUNGE_KEY.is_file():
        _skip(f"{MUNGE_KEY} missing (the munge package's postinst normally creates it)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _munge_works() -> bool:
    try:
        proc = subprocess.run(
            "munge -n | unmunge", shell=True, capture_output=True, timeout=10, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def _hardware() -> dict[str, int]:
    """`slurmd -C`: the CPUs, topology and memory slurmd will report when it registers."""
    line = _run("/usr/sbin/slurmd", "-C", timeout=30).stdout
    found = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    hw = {k: found[k] for k in keys if k in found}
    hw.setdefault("CPUs", os.cpu_count() or 1)
    mem = found.get("RealMemory") or os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
    # Below what slurmd measures, or the node registers as drained ("Low RealMemory").
    hw["RealMemory"] = int(mem * 0.8)
    return hw


class SlurmCluster:
    """One controller, one node (`self.node`) with `GPUS` fake GPUs, one partition `debug`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}  # what we started, stopped in reverse
        self.memory_mb = 0
        self.cpus = 0
        self.bin = self.root / "bin"
        self.env = {  # for every Slurm client (sinfo, sbatch, ...) and for Snakemake
            **{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")},
            "SLURM_CONF": str(self.conf),
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            **CPU_ONLY,  # its jobs are CPU jobs, whatever GPUs the test machine has
        }

    # ---- set-up --------------------------------------------------------------------------
    def write_config(self) -> None:
        for sub in ("state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        hw = _hardware()
        self.memory_mb, self.cpus = hw["RealMemory"], hw["CPUs"]
        node = " ".join(f"{k}={v}" for k, v in hw.items())
        r = self.root
        self.conf.write_text(
            f"""# A private test cluster (tests/slurm_cluster.py); not the system's /etc/slurm.
ClusterName=steeringci
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
# root: our state/spool/log directory is a private root-owned tmp dir.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/slurmctld.log
SlurmdLogFile={r}/slurmd.log
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Keep finished jobs in slurmctld, where squeue --states=all and scontrol show job find them.
# Below 3x the plugin's first status-check delay, the plugin falls back to sacct and hangs.
MinJobAge={MIN_JOB_AGE}
GresTypes=gpu
NodeName={self.node} NodeAddr=127.0.0.1 {node} Gres=gpu:{GPUS} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        )
        # Read from slurm.conf's directory. /dev/null: a GPU without a device file to bind.
        (r / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={self.node} Name=gpu File=/dev/null Count={GPUS}\n"
        )

    def write_wrappers(self) -> None:
        """Client commands that find this cluster without SLURM_CONF, first on `env`'s PATH.

        snakemake-executor-plugin-slurm-jobstep (0.6.1) drops every SLURM_* variable but the
        job's ids, SLURM_CONF included, before its `srun` inside the job; that srun would
        then look for /etc/slurm/slurm.conf and fail ("Could not establish a configuration
        source").
        """
        self.bin.mkdir(parents=True, exist_ok=True)
        for name in CLIENTS:
            real = shutil.which(name)
            if real is None:
                continue
            wrapper = self.bin / name
            wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {real} "$@"\n')
            wrapper.chmod(0o755)

    def _popen(self, name: str, *cmd: str, **kwargs) -> None:
        out = open(self.root / f"{name}.out", "wb")  # the child keeps its own copy
        self.procs[name] = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,  # no terminal Ctrl-C straight to the daemons; stop() ends them
            **kwargs,
        )
        out.close()

    def start_munge(self) -> None:
        if _munge_works():
            return  # the host's munged: shared, not ours to stop
        if not MUNGE_RUN.is_dir():
            MUNGE_RUN.mkdir(mode=0o755)
            shutil.chown(MUNGE_RUN, "munge", "munge")
        # A pid file left by a dead munged would make it refuse to start.
        MUNGE_PID.unlink(missing_ok=True)
        self._popen("munged", "/usr/sbin/munged", "--foreground", user="munge", group="munge")
        self._wait(_munge_works, 15, "munged to answer `munge -n | unmunge`")

    def start(self, timeout: float = 60) -> SlurmCluster:
        """Bring the cluster up; raise with the daemons' logs if the node never turns idle."""
        atexit.register(self.stop)  # even if the fixture's teardown never runs
        try:
            self.write_config()
            self.write_wrappers()
            self.start_munge()
            conf = str(self.conf)
            self._popen("slurmctld", "/usr/sbin/slurmctld", "-D", "-f", conf)
            self._popen("slurmd", "/usr/sbin/slurmd", "-D", "-f", conf, "-N", self.node)
            self._wait(lambda: self.node_state() == "idle", timeout, f"node {self.node} idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(
                    f"{', '.join(dead)} exited while waiting for {what}\n{self.logs()}"
                )
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}\n{self.logs()}")

    # ---- use -----------------------------------------------------------------------------
    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        return _run(*cmd, timeout=timeout, env=self.env)

    def node_state(self) -> str:
        proc = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", timeout=10)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows (MinJobAge), as `scontrol show job -o` fields."""
        proc = self.run("scontrol", "show", "job", "-o")
        assert proc.returncode == 0, proc.stderr
        jobs = []
        for line in proc.stdout.splitlines():
            if line.startswith("JobId="):
                # Values may hold spaces (Command=...), so split on " Key=" boundaries.
                fields = re.findall(r"(?:^| )([A-Za-z:/]+)=(.*?)(?= [A-Za-z:/]+=|$)", line)
                jobs.append({k: v.strip() for k, v in fields})
        return jobs

    def logs(self, chars: int = 3000) -> str:
        """The daemons' logs (tails), and the node's state and reason while slurmctld runs."""
        parts = []
        ctld = self.procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            nodes = self.run("sinfo", "-N", "-o", "%N %T %E", timeout=10)
            parts.append(f"--- sinfo -N\n{nodes.stdout}{nodes.stderr}")
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out", "munged.out"):
            path = self.root / name
            if path.is_file():
                parts.append(f"--- {path}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    # ---- tear-down -----------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel leftover jobs, then end slurmd, slurmctld and munged (if ours), by pid."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            # Jobs' slurmstepd processes outlive slurmd; cancel them while the controller is up.
            active = self.run("squeue", "-h", "-t", "PD,R,CG", "-o", "%i").stdout.split()
            if active:
                self.run("scancel", *active)
                deadline = time.monotonic() + 15
                while (
                    time.monotonic() < deadline
                    and self.run("squeue", "-h", "-t", "PD,R,CG", "-o", "%i").stdout.strip()
                ):
                    time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            if name == "munged":
                MUNGE_PID.unlink(missing_ok=True)
        for pid_file in ("slurmctld.pid", "slurmd.pid"):
            (self.root / pid_file).unlink(missing_ok=True)
        atexit.unregister(self.stop)


def start_or_skip(root: Path) -> SlurmCluster:
    """A running cluster in `root`, or a pytest skip saying why there cannot be one."""
    ensure_packages()
    return SlurmCluster(root).start()
