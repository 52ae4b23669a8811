"""profiles/slurm on a real (private, single-node) Slurm cluster: config/test.yaml (BoolQ)
submitted job by job with sbatch, GPUs asked for exactly by the GPU rules, the same tables at
the end.

Needs root and apt (Debian/Ubuntu) for the Slurm packages; skipped otherwise, or failed with
STEERING_REQUIRE_SLURM=1. The cluster: tests/slurm_cluster.py. Nearly all the time goes to
its 8 Slurm jobs (one fake GPU, so the 5 GPU jobs run one after another).
"""

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from slurm_cluster import GPUS, start_or_skip

from tests.workflow import copy_workflow

pytestmark = pytest.mark.slow

TIMEOUT = 420  # s; Snakemake can wait forever on a job status it cannot read
# config/test.yaml's jobs on its first dataset, for the base model and the swept steering
# variant (the profile is under test, not the grid: the other dataset, joint and GRPO would
# only add jobs of the same two GPU rules, run one after another on the one fake GPU). The
# target rule `all` runs no command, so is never submitted.
EXPECTED_JOBS = {"prepare_data": 1, "make_tiny_model": 1, "train": 2, "evaluate": 3, "aggregate": 1}
GPU_RULES = {"train", "evaluate"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = start_or_skip(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()


def tail(path: Path, chars: int = 4000) -> str:
    return f"--- {path}\n{path.read_text(errors='replace')[-chars:]}" if path.is_file() else ""


@pytest.fixture(scope="module")
def run(cluster, tmp_path_factory):
    """config/test.yaml (its first dataset) through profiles/slurm; the workdir, Snakemake's
    log and Slurm's jobs."""
    work = copy_workflow(tmp_path_factory.mktemp("slurm-pipeline"))
    # The rules ask 16000 MB for train/evaluate by default, more than a small CI node may
    # have (16 GB runner: 12.8 GB declared), and a job bigger than every node is rejected at
    # submission. Set through the config's resources section, as a user would: a command-line
    # --set-resources would replace the profile's whole set-resources section (under test).
    # The 10 min time limit lets Slurm end a hung job.
    small = {"resources": {rule: {"mem_mb": 2000, "runtime": 10} for rule in GPU_RULES}}
    (work / "ci.yaml").write_text(yaml.safe_dump(small))
    config = yaml.safe_load((work / "config/test.yaml").read_text())
    config["datasets"] = {"BoolQ": config["datasets"]["BoolQ"]}
    config["variants"] = {v: config["variants"][v] for v in ("base", "silu")}
    (work / "one-dataset.yaml").write_text(yaml.safe_dump(config))
    command = [
        *(sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm"),
        *("--configfile", "one-dataset.yaml", "ci.yaml"),
        # No slurmdbd here: with the plugin's default status command (sacct) Snakemake
        # would wait forever.
        *("--slurm-status-command", "squeue"),
        # Status checks 2 s apart, not 40 s (the plugin) / 10 s (Snakemake's first): the
        # plugin waits this long after a check that saw a job end, and 10 s more after each
        # one that saw none. Minutes off a run of short jobs.
        *("--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2"),
        # One fake GPU and 2 cores: more jobs would only wait in Slurm's queue.
        *("--jobs", "4"),
    ]
    env = {
        **cluster.env,  # SLURM_CONF and PATH: our cluster, not a system one
        # the rules' `python` is the venv's, in the Slurm jobs too (sbatch --export=ALL)
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{cluster.env['PATH']}",
        "HF_HUB_OFFLINE": "1",
    }
    log = work / "snakemake.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            # SIGINT, not SIGTERM: Snakemake then cancels its Slurm jobs and exits;
            # SIGTERM only makes it wait for the running jobs.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            rc = f"timeout after {TIMEOUT} s"
    jobs = cluster.jobs()

    def diagnosis() -> str:
        slurm_logs = sorted((work / ".snakemake/slurm_logs").rglob("*.log"))
        rule_logs = sorted((work / "results/logs").rglob("*.log"))
        return "\n".join(
            [
                f"snakemake: {rc}",
                tail(log, 6000),
                *(tail(p, 1500) for p in slurm_logs[-4:] + rule_logs[-2:]),
                "--- scontrol show job",
                *(f"{j['JobId']} {j['JobState']} {j.get('Comment')}" for j in jobs),
                cluster.logs(2000),
            ]
        )

    return SimpleNamespace(work=work, rc=rc, jobs=jobs, diagnosis=diagnosis)


def rule_of(job: dict) -> str:
    """The rule, from the plugin's comment `rule_<name>[_wildcards_<values>]`."""
    return job["Comment"].removeprefix("rule_").split("_wildcards_")[0]


def test_pipeline_through_slurm_asks_gpus_for_gpu_rules_only(run):
    work, jobs, diagnosis = run.work, run.jobs, run.diagnosis
    assert run.rc == 0, diagnosis()
    profile = yaml.safe_load((work / "profiles/slurm/config.yaml").read_text())
    # Every Snakemake job went through Slurm and completed there (none were retried).
    ours = [j for j in jobs if j.get("Comment", "").startswith("rule_")]
    assert Counter(rule_of(j) for j in ours) == EXPECTED_JOBS, diagnosis()
    assert {j["JobState"] for j in ours} == {"COMPLETED"}, diagnosis()
    for job in ours:
        rule = rule_of(job)
        gpus = job.get("TresPerJob", "")
        mem = job.get("MinMemoryNode", "")
        if rule in GPU_RULES:
            # gpu=1 of the rule -> --gpus=1; cpus_per_task from set-resources; mem_mb
            # from the config's resources section (ci.yaml), not default-resources.
            assert gpus == "gres:gpu:1", (rule, job)
            cpus = profile["set-resources"][rule]["cpus_per_task"]
            assert int(job["NumCPUs"]) == cpus, (rule, job)
            assert mem == "2000M", (rule, job)
        else:
            # CPU rules declare no gpu: no GPU request, and the profile's default memory.
            assert gpus in ("", "(null)"), (rule, job)
            assert mem == f"{profile['default-resources']['mem_mb']}M", (rule, job)

    # The same results as a local run (tests/test_pipeline.py checks the contents).
    long = pd.read_csv(work / "results/tables/long.csv", keep_default_na=False)
    assert len(long) == 3 * 2  # (base, silu at 2 rates) x splits, one seed
    assert set(long.variant) == {"base", "silu"}
    # sweep points ran as Slurm jobs under their names (@, =: Snakemake's --target-jobs)
    assert set(long[long.variant == "silu"].point) == {"lr=0.005", "lr=0.02"}
    assert any("silu@lr=0.02" in j.get("Comment", "") for j in ours), diagnosis()
    assert set(long.dataset) == {"BoolQ"} and set(long.seed) == {0}
    md = (work / "results/tables/summary_test.md").read_text()
    assert md.startswith("| model | variant | params % | BoolQ | BoolQ (paper) |")
    assert all(f"| {v} |" in md for v in ("base", "silu")), md


def test_more_gpus_than_the_node_has_is_rejected_at_submission(cluster):
    proc = cluster.run("sbatch", "--parsable", f"--gpus={GPUS + 1}", "--wrap", "true")
    assert proc.returncode != 0
    assert "Requested node configuration is not available" in proc.stderr
