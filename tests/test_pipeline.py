"""The real Snakemake pipeline: an end-to-end run of config/test.yaml, lint, dry runs of the
shipped configs, incremental scheduling (bad configs: tests/test_reliability.py). Runs in a
scratch copy of the repo."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from steering.pipeline.sweep import join_run_name
from tests.workflow import copy_workflow, job_counts, run_config, snakemake
from tests.workflow import env as workflow_env


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """config/test.yaml run to completion once, shared by the tests below."""
    work = copy_workflow(tmp_path_factory.mktemp("pipeline"))
    proc = snakemake(
        work, "--configfile", "config/test.yaml", "--cores", "2", "--resources", "gpu=2"
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return work


@pytest.mark.slow
def test_end_to_end_tables_match_the_run_metrics(finished):
    work = finished
    long = pd.read_csv(work / "results/tables/long.csv", keep_default_na=False)
    # datasets x (base, silu at 2 rates, joint, rl) x splits, one seed
    assert len(long) == 2 * 5 * 2
    assert set(long.columns) >= {
        "model",
        "dataset",
        "variant",
        "point",
        "seed",
        "split",
        "accuracy",
        "accuracy_strict",
        "n",
        "trainable_parameters",
        "trainable_share",
        "train_time_s",
        "eval_tokens_per_s",
        "protocol_version",
        "git_commit",
    }
    assert set(long[long.variant == "silu"].point) == {"lr=0.005", "lr=0.02"}
    for row in long.itertuples():
        run = (
            work / f"results/runs/{row.model}/{row.dataset}/{join_run_name(row.variant, row.point)}"
        )
        run = run / f"seed{row.seed}"
        metrics = json.loads((run / f"{row.split}.metrics.json").read_text())
        assert row.accuracy == metrics["accuracy"] and row.n == metrics["n"]
        assert row.accuracy_strict == metrics["accuracy_strict"]
        assert 0 < row.n <= 16  # max_eval_samples
        assert row.protocol_version == metrics["provenance"]["protocol_version"] == 1
        if row.variant != "base":
            training = json.loads((run / "checkpoint/training.json").read_text())
            assert row.trainable_parameters == training["trainable_parameters"]
            if row.variant in ("silu", "rl"):
                assert row.trainable_parameters == 2 * 8 * 32 * 2
            else:  # joint: LoRA r=2 on the seven projections (hidden 32, MLP 64, KV 16) + adapters
                lora = 2 * ((32 + 32) + (32 + 16) * 2 + (32 + 32) + (32 + 64) * 3) * 2
                assert row.trainable_parameters == lora + 2 * 8 * 32 * 2
                assert (run / "checkpoint/lora/adapter_config.json").is_file()
            assert (run / "train_log.jsonl").read_text().count("\n") >= 1
        records = (run / f"{row.split}.json").read_text().splitlines()
        assert len(records) == row.n and set(json.loads(records[0])) == {
            "prompt",
            "output",
            "label",
            "eval",
            "eval_strict",
        }
    summary = pd.read_csv(work / "results/tables/summary_test.csv").set_index("variant")
    chosen = pd.read_csv(work / "results/tables/selection.csv", keep_default_na=False)
    chosen = chosen.set_index(["variant", "dataset"])
    test = long[long.split == "test"].set_index(["variant", "dataset", "point"])
    for variant in ("base", "silu", "joint", "rl"):
        for dataset in ("BoolQ", "ListOps"):
            point = chosen.loc[(variant, dataset), "point"]
            assert summary.loc[variant, dataset] == pytest.approx(
                100 * test.loc[(variant, dataset, point), "accuracy"]
            )
    assert summary.loc["silu", "BoolQ paper"] == 87.5  # the config maps silu to the paper's row
    md = (work / "results/tables/summary_test.md").read_text()
    assert md.startswith("| model | variant | params % | BoolQ | BoolQ (paper) | ListOps |")
    assert "\\begin{tabular}" in (work / "results/tables/summary_validation.tex").read_text()
    strict = pd.read_csv(work / "results/tables/summary_test_strict.csv").set_index("variant")
    for variant in ("base", "silu", "joint", "rl"):
        for dataset in ("BoolQ", "ListOps"):
            point = chosen.loc[(variant, dataset), "point"]
            assert strict.loc[variant, dataset] == pytest.approx(
                100 * test.loc[(variant, dataset, point), "accuracy_strict"]
            )
    assert "BoolQ paper" not in strict.columns or strict["BoolQ paper"].isna().all()
    # the GRPO variant: trained by GRPO for its 2 steps, marked, its reward curve kept
    assert set(long[long.variant == "rl"].objective) == {"grpo"}
    assert set(long[long.variant == "silu"].objective) == {"sft"}
    assert "| tiny | rl (GRPO) |" in md and "| tiny | silu " in md
    rewards = pd.read_csv(work / "results/tables/rewards.csv")
    assert set(rewards.variant) == {"rl"} and set(rewards.dataset) == {"BoolQ", "ListOps"}
    assert sorted(rewards[rewards.dataset == "BoolQ"].step) == [1, 2]
    for png in (
        "accuracy_by_variant.png",
        "accuracy_vs_share.png",
        "sweep_BoolQ.png",
        "rewards.png",
    ):
        assert (work / "results/plots" / png).read_bytes()[:4] == b"\x89PNG"
    for rule in ("prepare_data", "make_tiny_model", "train", "evaluate"):
        assert any((work / "results/logs" / rule).rglob("*.log")), rule
        assert any((work / "results/benchmarks" / rule).rglob("*.tsv")), rule


def runs_redone(n: int) -> dict[str, int]:
    return {"train": n, "evaluate": n, "aggregate": 1, "all": 1, "total": 2 * n + 2}


@pytest.mark.slow
def test_rerun_does_nothing_and_a_new_variant_schedules_only_its_jobs(finished):
    work = finished
    again = snakemake(work, "--configfile", "config/test.yaml", "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    config = yaml.safe_load((work / "config/test.yaml").read_text())
    config["variants"]["linear"] = {"activation": None}
    (work / "more.yaml").write_text(yaml.safe_dump(config))
    dry = snakemake(work, "--configfile", "more.yaml", "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert job_counts(dry.stdout) == runs_redone(2)
    # editing one dataset's training settings reruns that dataset's trained runs only
    config = yaml.safe_load((work / "config/test.yaml").read_text())
    config["datasets"]["ListOps"]["warmup_ratio"] = 0.1
    (work / "edited.yaml").write_text(yaml.safe_dump(config))
    dry = snakemake(work, "--configfile", "edited.yaml", "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert job_counts(dry.stdout) == runs_redone(4)  # silu at 2 rates, joint, rl
    assert (
        "dataset=ListOps, variant=silu@lr=0.02" in dry.stdout and "dataset=BoolQ" not in dry.stdout
    )


@pytest.mark.slow
def test_report_is_self_contained_html(finished):
    proc = snakemake(
        finished, "--configfile", "config/test.yaml", "--report", "results/report.html"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (finished / "results/report.html").read_text()
    assert "accuracy_by_variant.png" in html and "summary_test.md" in html
    assert "rewards.png" in html and "rewards.csv" in html
    assert "sweep_BoolQ.png" in html and "selection.csv" in html
    # it opens with what ran (report/workflow.rst, rendered from the config) and how to read it
    assert "Post-block low-rank steering: a reproduction run" in html
    assert "config/test.yaml" in html and "How to read it" in html
    assert "swept over lr" in html
    assert "BoolQ (synthetic; the first 64 training rows, the first 16 rows of each" in html


def test_lint_is_clean(tmp_path):
    proc = snakemake(copy_workflow(tmp_path), "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "configfile, expected",
    [
        (
            "config/config.yaml",
            # the real model converted once; 2 datasets x (silu 2 rates x 2 seeds + lora 2
            # seeds) trained, each run and the base evaluated on both splits by one job
            {"convert_gguf_model": 1, "prepare_data": 2, "train": 12, "evaluate": 14},
        ),
        (
            "config/smollm2-cpu.yaml",
            # 2 datasets x (silu 2 rates + lora + full), one seed
            {"convert_gguf_model": 1, "prepare_data": 2, "train": 8, "evaluate": 10},
        ),
        (
            "config/tiny.yaml",
            {"make_tiny_model": 1, "prepare_data": 6, "train": 60, "evaluate": 66},
        ),
        (
            "config/smollm2.yaml",
            # the paper's 41 points on the one real model and all six tasks
            {"convert_gguf_model": 1, "prepare_data": 6, "train": 6 * 41 * 3, "evaluate": 6 * 124},
        ),
        (
            "config/paper.yaml",
            # 41 points: 4 post-block variants x 5 rates, LoRA 5, full 5, ReFT 5 x 2, joint 1
            {"prepare_data": 6, "train": 4 * 6 * 41 * 3, "evaluate": 4 * 6 * (41 * 3 + 1)},
        ),
    ],
)
def test_dry_run_of_shipped_configs(tmp_path, configfile, expected):
    proc = snakemake(copy_workflow(tmp_path), "--configfile", configfile, "-n")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    counts = job_counts(proc.stdout)
    assert {k: counts.get(k) for k in expected} == expected
    assert "torch" not in proc.stderr  # the DAG is built without importing torch


SWEEP = {
    "models": {"tiny": {"tiny": {"hidden_size": 32, "layers": 2}}},
    "datasets": {"BoolQ": {"source": "synthetic", "synthetic_scale": 0.05}},
    "variants": {"silu": {"sweep": {"lr": [0.001, 0.03]}}},
    "seeds": [0, 1],
    "training": {"max_train_samples": 48, "max_eval_samples": 24, "save_steps": 0},
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A 2-point x 2-seed sweep on one dataset, run to completion."""
    return run_config(tmp_path_factory.mktemp("sweep"), "sweep.yaml", SWEEP)


@pytest.mark.slow
def test_a_sweep_runs_every_point_and_reports_the_validation_argmax(swept):
    work, log = swept
    assert job_counts(log) == {
        **{"make_tiny_model": 1, "prepare_data": 1, "train": 4, "evaluate": 4},
        **{"aggregate": 1, "all": 1, "total": 12},
    }
    runs = work / "results/runs/tiny/BoolQ"
    assert sorted(p.name for p in runs.iterdir()) == ["silu@lr=0.001", "silu@lr=0.03"]
    val = {
        point: [
            json.loads((runs / point / f"seed{s}/validation.metrics.json").read_text())["accuracy"]
            for s in (0, 1)
        ]
        for point in ("silu@lr=0.001", "silu@lr=0.03")
    }
    means = {p: sum(v) / 2 for p, v in val.items()}
    best = max(sorted(means), key=lambda p: round(means[p], 9))  # ties: the smaller rate
    chosen = pd.read_csv(work / "results/tables/selection.csv").iloc[0]
    assert f"silu@{chosen['point']}" == best and chosen["points"] == 2 and chosen["seeds"] == 2
    assert chosen["val_mean"] == pytest.approx(100 * means[best])
    test = pd.Series(
        [
            100 * json.loads((runs / best / f"seed{s}/test.metrics.json").read_text())["accuracy"]
            for s in (0, 1)
        ]
    )
    table = pd.read_csv(work / "results/tables/summary_test.csv")
    assert list(table["variant"]) == ["chance", "silu"]  # guessing heads the rows
    summary = table.iloc[1]
    assert summary["seeds"] == 2
    assert summary["BoolQ"] == pytest.approx(test.mean()) == chosen["test_mean"]
    assert summary["BoolQ std"] == pytest.approx(test.std()) == pytest.approx(chosen["test_std"])
    assert len(pd.read_csv(work / "results/tables/sweep_validation.csv")) == 2


@pytest.mark.slow
def test_adding_a_value_to_a_sweep_schedules_only_its_jobs(swept):
    work, _ = swept
    config = json.loads(json.dumps(SWEEP))
    config["variants"]["silu"]["sweep"]["lr"].append(0.01)
    (work / "three.yaml").write_text(yaml.safe_dump(config))
    dry = snakemake(work, "--configfile", "three.yaml", "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert job_counts(dry.stdout) == runs_redone(2)  # the new point's two seeds
    planned = set(re.findall(r"variant=([^,\s]+)", dry.stdout))
    assert planned == {"silu@lr=0.01"}, planned


def _workers(work: Path) -> list[int]:
    """Pids of the training processes running in ``work`` (torchrun's workers, not its agent)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if os.readlink(proc / "cwd") != str(work):
                continue
        except (OSError, ValueError):
            continue
        if b"scripts/train.py" in cmd and b"torch.distributed.run" not in cmd:
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_a_ddp_training_job_killed_mid_run_is_retried_and_resumes(tmp_path):
    """gpus_per_train: 2 runs the train rule under torchrun; a worker killed mid-run (as by a
    preemption) fails the attempt, Snakemake deletes its outputs but not the resume
    directory, and the retry resumes from the last checkpoint."""
    work = copy_workflow(tmp_path).resolve()
    config = {
        "models": {"tiny": {"tiny": {"hidden_size": 64, "layers": 4}}},
        "datasets": {"BoolQ": {"source": "synthetic", "synthetic_scale": 0.1}},
        "variants": {"silu": {}},
        "seeds": [0],
        "training": {
            "lr": 0.01,
            "bs": 1,
            "max_train_samples": 200,  # 200 / (2 processes x 1 x accumulation 2) = 50 steps
            "save_steps": 5,
            "gpus_per_train": 2,
            "device": "cpu",  # gloo: a CPU test, whatever GPUs the machine has
        },
    }
    (work / "ddp.yaml").write_text(yaml.safe_dump(config))
    run = work / "results/runs/tiny/BoolQ/silu/seed0"
    env = workflow_env(OMP_NUM_THREADS="1")
    args = ["--configfile", "ddp.yaml", "--cores", "2", "--resources", "gpu=2", "--retries", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args, str(run.relative_to(work) / "checkpoint")],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    from steering.training import resume

    deadline = time.monotonic() + 300
    while not (run / "resume").is_dir() or resume.last_checkpoint(run / "resume") is None:
        assert proc.poll() is None, proc.stdout.read()[-4000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    workers = _workers(work)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    assert "Trying to restart job" in out, out[-4000:]  # the first attempt failed
    training = json.loads((run / "checkpoint/training.json").read_text())
    assert training["world_size"] == 2 and training["optimizer_steps"] == 50
    assert training["resumed_from_step"] and training["resumed_from_step"] >= 5
    log = (work / "results/logs/train/tiny/BoolQ/silu/seed0.log").read_text()
    assert "resuming from results/runs/tiny/BoolQ/silu/seed0/resume/checkpoint-" in log
    # the job asked for 2 GPUs and was given none (the test hides them): its log says so
    assert "gpu_lease: this job asks for 2 GPU(s), and CUDA_VISIBLE_DEVICES='' hides" in log
    assert "warning: this job asked for 2 GPU(s) and trains on the CPU" in log
    assert not (run / "resume").exists()  # finished: the resume state is gone
