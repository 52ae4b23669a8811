"""Each expected error of the train/inference scripts: one clear line, exit 2, no output left.

The real scripts run in-process (runpy) to keep these fast; the subprocess path is covered by
tests/test_scripts.py.
"""

import json
import runpy
import sys
from pathlib import Path

import pytest

from steering.tasks import get_task
from steering.tasks.files import write_prepared
from steering.tiny import save_tiny_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("errors")
    save_tiny_model(ws / "tiny", "llama", hidden_size=64, num_layers=2)
    save_tiny_model(ws / "tiny32", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    write_prepared(
        task, task.make_splits(task.synthetic(scale=0.02)), ws / "data", {"kind": "synthetic"}
    )
    return ws


def run_script(name, args, monkeypatch, capsys, cwd):
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [name, *map(str, args), "--no-progress"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "scripts" / name), run_name="__main__")
    captured = capsys.readouterr()
    return e.value.code, captured.err


def files_under(path: Path) -> list[str]:
    return (
        sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
        if path.exists()
        else []
    )


@pytest.mark.parametrize(
    "name, args, message",
    [
        ("train.py", ["--dataset-name", "SQuAD"], "unknown dataset 'SQuAD'; valid names"),
        ("train.py", ["--model-name", "{ws}/nope"], "model '{ws}/nope' is not a local directory"),
        (
            "train.py",
            ["--data-dir", "{ws}/missing"],
            "BoolQ: data directory {ws}/missing does not exist",
        ),
        ("train.py", ["--test-only"], "--test-only only makes sense with --do-eval"),
        ("train.py", ["--lr", "0"], "lr=0.0 must be > 0"),
        ("train.py", ["--official-sites"], "--official-sites only applies with --submodules"),
        (
            "train.py",
            ["--output-dir", "{ws}/afile"],
            "output directory {ws}/afile exists and is a file",
        ),
        (
            "train.py",
            ["--lr", "1e30", "--epochs", "3", "--output-dir", "{ws}/nan"],
            "the training loss is nan at optimizer step",
        ),
        ("inference.py", ["--ckpt-path", "{ws}/nockpt"], "checkpoint {ws}/nockpt does not exist"),
        (
            "inference.py",
            [
                "--ckpt-path",
                "{ws}/ckpt64",
                "--model-name",
                "{ws}/tiny32",
                "--output-file",
                "{ws}/out/x.json",
            ],
            "hidden_size: checkpoint 64 vs base model 32",
        ),
        ("inference.py", ["--output-file", "{ws}"], "is a directory; give a file path"),
    ],
)
def test_expected_errors(ws, monkeypatch, capsys, name, args, message):
    (ws / "afile").write_text("not a directory")
    if not (ws / "ckpt64").exists():
        from transformers import AutoModelForCausalLM

        from steering import SteeredModel

        SteeredModel(AutoModelForCausalLM.from_pretrained(ws / "tiny")).save_pretrained(
            ws / "ckpt64"
        )
    base = {"--model-name": f"{ws}/tiny", "--dataset-name": "BoolQ", "--data-dir": f"{ws}/data"}
    given = [a.format(ws=ws) for a in args]
    for flag, value in base.items():
        if flag not in given:
            given = [flag, value, *given]
    before = files_under(ws)
    code, err = run_script(name, given, monkeypatch, capsys, ws)
    assert code == 2
    assert "error: " in err and message.format(ws=ws) in err
    assert "Traceback" not in err
    assert files_under(ws) == before  # nothing half-written, nothing new


def test_debug_shows_the_traceback(ws, monkeypatch, capsys):
    monkeypatch.chdir(ws)
    monkeypatch.setattr(
        sys, "argv", ["train.py", "--model-name", "x", "--dataset-name", "SQuAD", "--debug"]
    )
    with pytest.raises(ValueError, match="unknown dataset"):
        runpy.run_path(str(ROOT / "scripts" / "train.py"), run_name="__main__")


def test_intervene_last_trains_and_evaluates(ws, monkeypatch, capsys):
    args = [
        "--model-name",
        ws / "tiny",
        "--dataset-name",
        "BoolQ",
        "--data-dir",
        ws / "data",
        "--intervene-last",
        "--max-train-samples",
        "16",
        "--do-eval",
        "--test-only",
        "--max-eval-samples",
        "4",
        "--output-dir",
        ws / "last",
    ]
    code, err = run_script("train.py", args, monkeypatch, capsys, ws)
    assert code == 0, err
    config = json.loads((ws / "last" / "steering_config.json").read_text())
    assert config["steering"]["positions"] == "last"
    trained_eval = (ws / "last" / "test.json").read_text()
    assert 1 <= len(trained_eval.splitlines()) <= 4  # --max-eval-samples 4 of a tiny split
    code, err = run_script(
        "inference.py",
        [
            "--model-name",
            ws / "tiny",
            "--dataset-name",
            "BoolQ",
            "--data-dir",
            ws / "data",
            "--ckpt-path",
            ws / "last",
            "--intervene-last",
            "--max-eval-samples",
            "4",
        ],
        monkeypatch,
        capsys,
        ws,
    )
    assert code == 0, err
    assert (ws / "last" / "test.json").read_text() == trained_eval  # the same greedy outputs
