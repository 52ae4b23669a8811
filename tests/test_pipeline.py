"""`make run`'s job for real: Snakemake on the embedded config, in a scratch copy of the repo."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _workdir(tmp_path: Path, config: str) -> Path:
    for name in ("Snakefile", "rules", "config", "scripts"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    (tmp_path / "test.yaml").write_text(config)
    return tmp_path


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "test.yaml", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_snakemake_runs_the_demo_end_to_end(tmp_path):
    work = _workdir(tmp_path, "demo:\n  steps: 120\n  seed: 1\n")
    proc = _snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((work / "results/demo/summary.json").read_text())
    assert summary["steps"] == 120 and summary["provenance"]["seed"] == 1
    assert summary["trainable_parameters"] == 2 * 8 * 64 * 4  # 2 r H L
    assert summary["train_loss_last"] < summary["train_loss_first"] / 2
    assert summary["accuracy_steered"] > summary["accuracy_base"]
    assert summary["reload_reproduces_outputs"] is True
    ckpt = work / "results/demo/checkpoint"
    assert {"steering_config.json", "adapter.safetensors"} <= {p.name for p in ckpt.iterdir()}
    assert (work / "results/benchmarks/demo.tsv").read_text().startswith("s\t")
    assert "accuracy base" in (work / "results/logs/demo.log").read_text()
    again = _snakemake(work)  # complete outputs are never recomputed
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.parametrize(
    "config, key",
    [("demo:\n  steps: 0\n", "steps"), ("demo:\n  stesp: 3\n", "stesp"), ("dmeo: {}\n", "dmeo")],
)
def test_bad_config_stops_before_any_job(tmp_path, config, key):
    work = _workdir(tmp_path, config)
    proc = _snakemake(work, "-n")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert key in out and "ValidationError" in out
    assert not (work / "results").exists()
