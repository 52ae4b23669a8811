"""The pipeline's lm-eval jobs (config block ``lm_eval``): which jobs a config makes and their
arguments, its config checks, and a real Snakemake run whose swept variant is evaluated at
the point the selection chose, with the long and retention tables checked against the
jobs' results."""

import json
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from steering.lm_eval import tasks
from steering.pipeline import grid_config, jobs, lm_eval_jobs
from tests.workflow import ROOT, copy_workflow, job_counts, snakemake

ARC_ROWS = ROOT / "tests" / "data" / "real" / "ARC_Challenge" / "test.jsonl"
CONFIG = {
    "models": {"tiny": {"tiny": {"hidden_size": 32, "layers": 2}}},
    "datasets": {"BoolQ": {"source": "synthetic", "synthetic_scale": 0.05}},
    "variants": {
        "base": {"method": "base"},
        "silu": {"sweep": {"lr": [0.005, 0.02]}},
    },
    "seeds": [0],
    "training": {"max_train_samples": 48, "max_eval_samples": 16, "save_steps": 0},
    "lm_eval": {
        "tasks": ["arc_challenge_local"],
        "include_path": "lm_tasks",
        "limit": 3,
        "batch_size": 4,
        "variants": ["silu"],
    },
}


def grid_of(config: dict, workdir: Path = ROOT) -> dict:
    config, written = json.loads(json.dumps(config)), json.loads(json.dumps(config))
    grid_config.check(config, written, schema=ROOT / "config" / "schema.yaml", workdir=workdir)
    return jobs.grid(config)


def script_args(args: str) -> object:
    """``scripts/lm_eval_run.py``'s parser on a job's quoted arguments."""
    import shlex

    module = runpy.run_path(str(ROOT / "scripts" / "lm_eval_run.py"))
    held = sys.argv
    sys.argv = ["lm_eval_run.py", *shlex.split(args)]
    try:
        return module["parse_args"]()
    finally:
        sys.argv = held


def test_jobs_one_per_model_base_and_per_run_seed_a_sweep_costs_one_point():
    config = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    config["lm_eval"] = {"tasks": ["arc_easy"]}
    grid = grid_of(config)
    found = lm_eval_jobs.jobs(grid)
    # six datasets x (silu's selected point, linear, vector, lora) x two seeds, one base job
    assert len(found) == 1 + 6 * 4 * 2
    assert sorted({j.name for j in found if j.name}) == ["linear", "lora", "silu", "vector"]
    config["lm_eval"].update(points="all", variants=["silu", "lora"])
    assert {j.name for j in lm_eval_jobs.jobs(grid_of(config)) if j.name} == {
        "silu@lr=0.005",
        "silu@lr=0.02",
        "lora",
    }
    config["lm_eval"].update(points="selected", variants=["silu@lr=0.02"])
    assert {j.name for j in lm_eval_jobs.jobs(grid_of(config)) if j.name} == {"silu@lr=0.02"}
    del config["lm_eval"]
    assert lm_eval_jobs.jobs(grid_of(config)) == []


def test_job_arguments_parse_with_the_script(tmp_path):
    (tmp_path / "lm_tasks").mkdir()
    grid = grid_of(CONFIG, tmp_path)
    selected = script_args(lm_eval_jobs.run_args(grid, "tiny", "BoolQ", "silu", 0))
    assert selected.checkpoint is None and selected.seed == 0
    assert selected.select == [
        f"results/runs/tiny/BoolQ/silu@lr={lr}/seed0/validation.metrics.json"
        for lr in (0.005, 0.02)
    ]
    assert selected.tasks == ["arc_challenge_local"] and selected.include_path == "lm_tasks"
    assert (selected.limit, selected.batch_size) == (3, 4)
    assert selected.output == "results/lm_eval/tiny/BoolQ/silu/seed0.json"
    inputs = lm_eval_jobs.inputs(grid, "tiny", "BoolQ", "silu", 0)
    assert "results/runs/tiny/BoolQ/silu@lr=0.02/seed0/checkpoint" in inputs
    base = script_args(lm_eval_jobs.base_args(grid, "tiny"))
    assert base.checkpoint is None and base.select is None
    assert base.model_name == "results/models/tiny" and base.output.endswith("tiny/base.json")


@pytest.mark.parametrize(
    "block, problem",
    [
        ({"variants": ["silu", "nope"]}, "'nope' is neither a variant nor a sweep point"),
        ({"variants": ["base"]}, "'base' is the untrained base model"),
        ({"include_path": "no/such/dir"}, "include_path 'no/such/dir' is not a directory"),
    ],
)
def test_config_checks(block, problem):
    config = {**CONFIG, "lm_eval": {"tasks": ["arc_easy"], **block}}
    with pytest.raises(grid_config.GridConfigError, match=problem):
        grid_of(config)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("lm_eval_pipeline"))
    tasks.arc_challenge(work / "lm_tasks", ARC_ROWS)
    (work / "lm.yaml").write_text(yaml.safe_dump(CONFIG))
    proc = snakemake(work, "--configfile", "lm.yaml", "--cores", "2", "--resources", "gpu=2")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    counts = job_counts(proc.stdout + proc.stderr)
    assert {k: counts.get(k) for k in ("lm_eval_base", "lm_eval", "lm_eval_tables")} == {
        "lm_eval_base": 1,
        "lm_eval": 1,
        "lm_eval_tables": 1,
    }
    return work


@pytest.mark.slow
def test_the_selected_point_is_evaluated_and_the_tables_follow_the_results(finished):
    work = finished
    chosen = pd.read_csv(work / "results/tables/selection.csv", keep_default_na=False)
    point = chosen[chosen.variant == "silu"].iloc[0]["point"]
    run = json.loads((work / "results/lm_eval/tiny/BoolQ/silu/seed0.json").read_text())
    assert run["selected"] == f"silu@{point}"
    assert run["config"]["steering"]["checkpoint"].endswith(f"silu@{point}/seed0/checkpoint")
    base = json.loads((work / "results/lm_eval/tiny/base.json").read_text())
    assert base["config"]["steering"]["method"] == "base"
    long = pd.read_csv(work / "results/tables/lm_eval.csv", keep_default_na=False)
    assert set(long.variant) == {"base", "silu"} and set(long.metric) == {"acc", "acc_norm"}
    assert set(long[long.variant == "silu"].point) == {point}
    kept = pd.read_csv(work / "results/tables/lm_eval_retention.csv")
    for metric in ("acc", "acc_norm"):
        value = run["results"]["arc_challenge_local"][f"{metric},none"]
        reference = base["results"]["arc_challenge_local"][f"{metric},none"]
        row = kept[kept.metric == metric].iloc[0]
        assert (row["mean"], row["base"]) == pytest.approx((value, reference))
        assert row["retention"] == pytest.approx(value - reference)
    assert "retention" in (work / "results/tables/lm_eval_retention.md").read_text()
