"""The real Snakemake workflow in a scratch directory, for the pipeline and reliability tests."""

import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ("Snakefile", "rules", "config", "scripts", "report", "profiles", "envs")


def copy_workflow(dest: Path) -> Path:
    """The workflow's files copied into ``dest`` (which then holds its own results/)."""
    for name in WORKFLOW:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    (dest / "data").symlink_to(ROOT / "data")  # the shipped real data, read only (8 MB)
    return dest


def env(**extra: str) -> dict[str, str]:
    """This venv first on PATH (rules call `python scripts/...`), the hub off, and no GPU
    (``tests/conftest.py``'s ``cpu_env``: the pipeline tests are CPU tests)."""
    from tests.conftest import cpu_env

    return cpu_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **extra)


def snakemake(work: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=work,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_config(dest: Path, name: str, config: dict) -> tuple[Path, str]:
    """The workflow copied into ``dest``, ``config`` written there as ``name`` and run to
    completion on 2 cores: the working directory and Snakemake's output."""
    import yaml

    work = copy_workflow(dest)
    (work / name).write_text(yaml.safe_dump(config))
    proc = snakemake(work, "--configfile", name, "--cores", "2", "--resources", "gpu=2")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return work, proc.stdout + proc.stderr


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", output, re.MULTILINE)}


def run_script(name, args, monkeypatch, capsys, cwd):
    """The real script in this process: (exit code, stderr, stdout)."""
    monkeypatch.chdir(cwd)
    quiet = ["--no-progress"] if name in ("train.py", "train_joint.py", "inference.py") else []
    monkeypatch.setattr(sys, "argv", [name, *map(str, args), *quiet])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "scripts" / name), run_name="__main__")
    captured = capsys.readouterr()
    return e.value.code, captured.err, captured.out


def files_under(path: Path) -> list[str]:
    if not path.exists():
        return []
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
