"""Reliability and safety, case by case: bad input, faults and interruptions, each driven
through the real scripts (in-process with runpy, or as subprocesses) or the real Snakemake
pipeline. Every case has an id; docs/reliability.md lists the same ids (a test below keeps
the two in step), so the count there is the count here.

An expected error must print one ``error:`` line naming what and where, exit 2, show no
traceback and leave no new file; a fault or interruption must never leave a file that a user
or Snakemake would take as complete, nor touch finished runs.
"""

import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import tests.test_io_faults  # noqa: F401  (its cases register in tests.cases)
from steering.loading.tiny import save_tiny_model
from steering.tasks import TASKS, get_task
from steering.tasks.files import write_prepared
from tests.cases import COVERED, case, cases
from tests.conftest import official_state
from tests.workflow import (
    ROOT,
    copy_workflow,
    env,
    files_under,
    job_counts,
    run_config,
    run_script,
    snakemake,
)

# --- inputs: configs, through `snakemake -n` -------------------------------------------------

GRID = {
    "models": {"tiny": {"tiny": {"hidden_size": 32, "layers": 2}}},
    "datasets": {"BoolQ": {"source": "synthetic", "synthetic_scale": 0.05}},
    "variants": {"a": {"rank": 2}},
    "seeds": [0],
    "splits": ["test"],
    "training": {"lr": 0.005, "max_train_samples": 16, "max_eval_samples": 4, "save_steps": 0},
}


def edited(edit) -> str:
    config = json.loads(json.dumps(GRID))
    edit(config)
    return yaml.safe_dump(config, sort_keys=False)


def swept(variant: dict, **more) -> str:
    """GRID with variant ``s`` (validation split on, so selection could run)."""
    return edited(
        lambda c: c.update(splits=["validation", "test"], **more) or c["variants"].update(s=variant)
    )


REPEATED_KEY = """\
models:
  tiny: {tiny: {hidden_size: 32, layers: 2}}
datasets:
  BoolQ: {source: synthetic, synthetic_scale: 0.05}
variants:
  a: {rank: 2}
  a: {rank: 4}
seeds: [0]
"""
CONFIG_CASES = cases(
    [
        pytest.param(
            edited(lambda c: c["datasets"].update(SQuAD={})), "SQuAD", id="config-unknown-task"
        ),
        pytest.param(
            edited(lambda c: c["variants"]["a"].update(rnak=4)), "rnak", id="config-unknown-key"
        ),
        pytest.param(
            edited(lambda c: c["models"]["tiny"].update(nme="x")),
            "nme",
            id="config-unknown-model-key",
        ),
        pytest.param(
            edited(lambda c: c["variants"]["a"].update(rank=0)),
            "0 is less than the minimum of 1",
            id="config-zero-rank",
        ),
        pytest.param(
            edited(lambda c: c["training"].update(lr=-0.1)),
            "-0.1 is less than or equal to the minimum of 0",
            id="config-negative-rate",
        ),
        pytest.param(
            edited(lambda c: c["training"].update(bs=0)),
            "0 is less than the minimum of 1",
            id="config-zero-batch-size",
        ),
        pytest.param(
            edited(lambda c: c["variants"]["a"].update(activation="swish")),
            "'swish' is not one of",
            id="config-unknown-choice",
        ),
        pytest.param(edited(lambda c: c.update(variants={})), "variants", id="config-empty-grid"),
        pytest.param(edited(lambda c: c.update(seeds=[])), "seeds", id="config-no-seeds"),
        pytest.param(
            edited(lambda c: c.update(seeds=[0, 0])), "non-unique", id="config-duplicate-seed"
        ),
        pytest.param(
            REPEATED_KEY,
            "line 7: key 'a' repeats the one on line 6",
            id="config-duplicate-name",
        ),
        pytest.param(
            edited(lambda c: c["variants"].update(b={"rank": 2})),
            "variants.b has the same settings as variants.a",
            id="config-same-entry-twice",
        ),
        pytest.param(
            edited(lambda c: c["variants"]["a"].update(lora_rank=4)),
            "variants.a (method steering): 'lora_rank' is only read by method(s) joint",
            id="config-key-of-another-method",
        ),
        pytest.param(
            edited(lambda c: c["variants"].update(j={"method": "joint", "kind": "vector"})),
            "joint adaptation does not support kind: vector",
            id="config-unsupported-combination",
        ),
        pytest.param(
            edited(lambda c: c["datasets"]["BoolQ"].update(data_dir="x")),
            "datasets.BoolQ: 'data_dir' is only read with source: local",
            id="config-option-of-another-source",
        ),
        pytest.param(
            edited(lambda c: c["datasets"].update(GSM8K={"source": "local", "data_dir": "nope"})),
            "datasets.GSM8K: data_dir 'nope' is not a directory",
            id="config-missing-data-dir",
        ),
        pytest.param(
            edited(lambda c: c["models"].update({"../escape": {"name": "x"}})),
            "'../escape' does not match",
            id="config-path-traversal-name",
        ),
        pytest.param(
            edited(lambda c: c["training"].update(dtype="bfloat16", precision="fp32")),
            "training: dtype bfloat16 and precision fp32 disagree",
            id="config-dtype-and-precision-disagree",
        ),
        # Sweeps: named by variant and key, before any job
        pytest.param(
            swept({"sweep": {"lr": []}}),
            "variants.s.sweep.lr: the list is empty",
            id="config-sweep-empty-list",
        ),
        pytest.param(
            swept({"sweep": {"lr": 0.001}}),
            "variants.s.sweep.lr: must be a list of values, e.g. [0.001]",
            id="config-sweep-not-a-list",
        ),
        pytest.param(
            swept({"sweep": {"lr": [0.001, 0.001]}}),
            "variants.s.sweep.lr: repeats 0.001; list each value once",
            id="config-sweep-repeated-value",
        ),
        pytest.param(
            swept({"sweep": {"learning_rate": [0.001]}}),
            "variants.s.sweep.learning_rate: no method reads 'learning_rate'",
            id="config-sweep-unknown-key",
        ),
        pytest.param(
            swept({"kind": "vector", "sweep": {"rank": [1, 2]}}),
            "variants.s.sweep.rank: method steering does not read 'rank'",
            id="config-sweep-key-its-method-does-not-read",
        ),
        pytest.param(
            swept({"sweep": {"seeds": [[0, 1]]}}),
            "variants.s.sweep.seeds: cannot be swept: seeds come from the top-level 'seeds'",
            id="config-sweep-seeds",
        ),
        pytest.param(
            swept({"method": "base", "sweep": {"lr": [0.001, 0.002]}}),
            "variants.s: a base variant (the untrained model) trains nothing",
            id="config-sweep-on-base",
        ),
        pytest.param(
            swept({"rank": 2, "sweep": {"lr": [0.005, 0.01]}}),
            "variants.s@lr=0.005 has the same settings as variants.a",
            id="config-sweep-point-is-another-variant",
        ),
        pytest.param(
            edited(lambda c: c["variants"].update({"a@lr=0.01": {"rank": 2}})),
            "'a@lr=0.01' does not match",
            id="config-sweep-point-name-by-hand",
        ),
        pytest.param(
            edited(lambda c: c["variants"].update(s={"sweep": {"lr": [0.001, 0.002]}})),
            "selection is made on the validation split, which 'splits' leaves out",
            id="config-sweep-without-validation",
        ),
        pytest.param(
            swept({"sweep": {"lr": [], "seed": [1]}, "rank": 0}),
            "0 is less than the minimum of 1",  # the schema's first, then all of ours at once
            id="config-sweep-schema-first",
        ),
        pytest.param(
            swept({"sweep": {"lr": [], "seed": [1], "lora_rank": [2]}}),
            "the config has 3 problem(s)",
            id="config-sweep-every-problem-at-once",
        ),
    ]
)


@pytest.fixture(scope="module")
def dry_work(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("dry"))


@pytest.mark.parametrize("text, named", CONFIG_CASES)
def test_bad_config_stops_before_any_job(dry_work, request, text, named):
    name = f"{request.node.callspec.id}.yaml"
    (dry_work / name).write_text(text)
    proc = snakemake(dry_work, "--configfile", name, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert named in out, out[-2000:]
    assert "Traceback" not in out
    assert not (dry_work / "results").exists()


def test_the_checked_grid_itself_is_valid(dry_work):
    (dry_work / "good.yaml").write_text(yaml.safe_dump(GRID))
    proc = snakemake(dry_work, "--configfile", "good.yaml", "-n")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


# --- inputs: flags, data files, checkpoints, models, through the scripts --------------------


def _write_jsonl(directory: Path, split: str, rows) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{split}.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


class _RunsCode:
    """A pickle that would create ``path`` if it were ever unpickled with code execution."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Tiny models, prepared data, and a bad version of each input kind."""
    from transformers import AutoModelForCausalLM

    from steering import SteeredModel

    ws = tmp_path_factory.mktemp("reliability")
    save_tiny_model(ws / "tiny", "llama", hidden_size=64, num_layers=2)
    save_tiny_model(ws / "tiny32", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    write_prepared(
        task, task.make_splits(task.synthetic(scale=0.02)), ws / "data", {"kind": "synthetic"}
    )
    (ws / "afile").write_text("not a directory")

    # Source files in the hub schema, then one fault each.
    train = task.synthetic_split("train", 12, seed=0)
    valid = task.synthetic_split("validation", 6, seed=0)
    for r in ws / "src-missing-column", ws / "src-wrong-type", ws / "src-empty", ws / "src-bytes":
        _write_jsonl(r, "validation", valid)
    (ws / "src-missing-column" / "train.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "passage"}) + "\n" for r in train)
    )
    _write_jsonl(ws / "src-wrong-type", "train", [{**r, "answer": "yes"} for r in train])
    _write_jsonl(ws / "src-empty", "train", train)
    (ws / "src-empty" / "validation.jsonl").write_text("")
    _write_jsonl(ws / "src-bytes", "train", train)
    lines = (ws / "src-bytes" / "train.jsonl").read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b'"question": "', b'"question": "caf\xe9 ', 1)  # Latin-1 e-acute
    (ws / "src-bytes" / "train.jsonl").write_bytes(b"\n".join(lines))
    # A huge row: a 100,000-word passage in every evaluation row (~1 MB of JSON in all).
    _write_jsonl(ws / "src-huge", "train", train)
    _write_jsonl(
        ws / "src-huge", "validation", [{**r, "passage": "word " * 100_000} for r in valid]
    )
    # Prepared data whose parquet was edited after preparation.
    shutil.copytree(ws / "data", ws / "data-edited")
    edited = ws / "data-edited" / "test.parquet"
    shutil.copy(ws / "data" / "validation.parquet", edited)

    # Checkpoints: a good one, then damaged copies.
    SteeredModel(AutoModelForCausalLM.from_pretrained(ws / "tiny")).save_pretrained(ws / "ckpt")
    for name in ("ckpt-truncated", "ckpt-bad-json", "ckpt-newer"):
        shutil.copytree(ws / "ckpt", ws / name)
    weights = ws / "ckpt-truncated" / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    (ws / "ckpt-bad-json" / "steering_config.json").write_text("{ nope")
    meta = json.loads((ws / "ckpt" / "steering_config.json").read_text())
    (ws / "ckpt-newer" / "steering_config.json").write_text(
        json.dumps({**meta, "format_version": 99})
    )
    base32 = AutoModelForCausalLM.from_pretrained(ws / "tiny32")
    torch.save(official_state(base32, ("block",)), ws / "official-32.bin")
    torch.save(
        {"adapters.layer0_block.down.weight": _RunsCode(ws / "PWNED-pickle")}, ws / "evil.bin"
    )

    # A model directory that needs its own code (auto_map) which writes a marker on import.
    shutil.copytree(ws / "tiny", ws / "remote")
    config = json.loads((ws / "remote" / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom.C", "AutoModelForCausalLM": "custom.M"}
    config["model_type"] = "custom-arch"  # one transformers lacks, so only the code could load
    (ws / "remote" / "config.json").write_text(json.dumps(config))
    (ws / "remote" / "custom.py").write_text(
        f"import pathlib\npathlib.Path({str(ws / 'PWNED-remote')!r}).touch()\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class C(LlamaConfig):\n    model_type = 'custom-arch'\n"
        "class M(LlamaForCausalLM):\n    config_class = C\n"
    )
    return ws


def _prepare(name):
    return ["--dataset-name", "BoolQ", "--data-dir", f"{{ws}}/{name}", "--out", "{ws}/out"]


SCRIPT_CASES = cases(
    [
        # Flags
        pytest.param(
            "train.py",
            ["--test-only"],
            "--test-only only makes sense with --do-eval",
            id="flags-contradictory",
        ),
        pytest.param(
            "train.py",
            ["--official-sites"],
            "--official-sites only applies with --submodules",
            id="flags-without-their-mode",
        ),
        pytest.param("train.py", ["--lr", "0"], "lr=0.0 must be > 0", id="flags-zero-rate"),
        pytest.param(
            "train.py",
            ["--dtype", "float16"],
            "--dtype float16 is no longer offered",
            id="flags-half-precision-weights",
        ),
        pytest.param(
            "inference.py",
            ["--dtype", "float32", "--precision", "bf16"],
            "--dtype float32 and --precision bf16 disagree",
            id="flags-dtype-and-precision-disagree",
        ),
        pytest.param(
            "train.py",
            ["--dataset-name", "SQuAD"],
            "unknown dataset 'SQuAD'; valid names",
            id="flags-unknown-task",
        ),
        pytest.param(
            "inference.py",
            ["--device", "cpu", "--device-map", "auto"],
            "give --device or --device-map, not both",
            id="flags-device-and-device-map",
        ),
        pytest.param(
            "train.py",
            ["--output-dir", "{ws}/afile"],
            "output directory {ws}/afile exists and is a file",
            id="flags-output-dir-is-a-file",
        ),
        pytest.param(
            "inference.py",
            ["--output-file", "{ws}"],
            "is a directory; give a file path",
            id="flags-output-file-is-a-directory",
        ),
        # Data files
        pytest.param(
            "train.py",
            ["--data-dir", "{ws}/missing"],
            "BoolQ: data directory {ws}/missing does not exist",
            id="data-missing-directory",
        ),
        pytest.param(
            "prepare_data.py",
            _prepare("src-missing-column"),
            "BoolQ: split 'train' has no column(s) ['passage']",
            id="data-missing-column",
        ),
        pytest.param(
            "prepare_data.py",
            _prepare("src-wrong-type"),
            "BoolQ: split 'train' row 0: field 'answer' must be a boolean, got str 'yes'",
            id="data-wrong-type",
        ),
        pytest.param(
            "prepare_data.py",
            _prepare("src-empty"),
            "{ws}/src-empty/validation.jsonl is empty; a source split needs at least one row",
            id="data-empty-split",
        ),
        pytest.param(
            "prepare_data.py",
            _prepare("src-bytes"),
            "{ws}/src-bytes/train.jsonl line 5, column 18: byte 0xe9 is not UTF-8",
            id="data-not-utf8",
        ),
        pytest.param(
            "inference.py",
            ["--data-dir", "{ws}/data-huge"],
            "-token prompt; with 10 new tokens that exceeds the model's context of 2,048",
            id="data-huge-row",
        ),
        pytest.param(
            "inference.py",
            ["--data-dir", "{ws}/data-edited"],
            "the file was changed or truncated; prepare it again",
            id="data-edited-after-preparing",
        ),
        # Checkpoints
        pytest.param(
            "inference.py",
            ["--ckpt-path", "{ws}/nockpt"],
            "checkpoint {ws}/nockpt does not exist",
            id="checkpoint-missing",
        ),
        pytest.param(
            "inference.py",
            ["--ckpt-path", "{ws}/ckpt-truncated"],
            "not a readable safetensors file",
            id="checkpoint-truncated",
        ),
        pytest.param(
            "inference.py",
            ["--ckpt-path", "{ws}/ckpt-bad-json"],
            "not valid JSON",
            id="checkpoint-corrupted-config",
        ),
        pytest.param(
            "inference.py",
            ["--ckpt-path", "{ws}/ckpt", "--model-name", "{ws}/tiny32"],
            "hidden_size: checkpoint 64 vs base model 32",
            id="checkpoint-wrong-shapes",
        ),
        pytest.param(
            "inference.py",
            ["--ckpt-path", "{ws}/ckpt-newer"],
            "format_version 99",
            id="checkpoint-newer-version",
        ),
        pytest.param(
            "inference.py",
            ["--ckpt-path", "{ws}/official-32.bin"],
            "was trained on a model with hidden size 32; this base model has hidden size 64",
            id="checkpoint-official-other-model",
        ),
        # Safety
        pytest.param(
            "inference.py",
            ["--ckpt-path", "{ws}/evil.bin"],
            "loaded without running any (weights_only=True)",
            id="safety-pickle-payload",
        ),
        pytest.param(
            "inference.py",
            ["--model-name", "{ws}/remote"],
            "ships Python code of its own (auto_map in its config.json)",
            id="safety-remote-code",
        ),
        pytest.param(
            "inference.py",
            ["--model-name", "{ws}/nope"],
            "model '{ws}/nope' is not a local directory",
            id="model-missing",
        ),
        # Numerical faults
        pytest.param(
            "train.py",
            ["--lr", "1e30", "--epochs", "3", "--output-dir", "{ws}/nan"],
            "the training loss is nan at optimizer step",
            id="numeric-nan-loss",
        ),
    ]
)


@pytest.fixture(scope="module")
def prepared_huge(ws):
    """The huge-row source prepares fine (the row is data, not an error) -> data-huge."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts/prepare_data.py"), *"--dataset-name BoolQ".split()]
        + ["--data-dir", str(ws / "src-huge"), "--out", str(ws / "data-huge")],
        env=env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return ws / "data-huge"


@pytest.mark.parametrize("name, args, message", SCRIPT_CASES)
def test_bad_input_gives_one_line_and_exit_2(
    ws, prepared_huge, monkeypatch, capsys, name, args, message
):
    given = [a.format(ws=ws) for a in args]
    if name != "prepare_data.py":
        base = {"--model-name": f"{ws}/tiny", "--dataset-name": "BoolQ", "--data-dir": f"{ws}/data"}
        for flag, value in base.items():
            if flag not in given:
                given = [flag, value, *given]
        if name == "inference.py" and "--output-file" not in given:
            given += ["--output-dir", f"{ws}/out"]
    before = files_under(ws)
    code, err, _ = run_script(name, given, monkeypatch, capsys, ws)
    assert code == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and message.format(ws=ws) in lines[0], err[-2000:]
    assert "Traceback" not in err
    assert files_under(ws) == before  # nothing half-written, nothing new (no marker either)


def test_debug_shows_the_traceback(ws, monkeypatch, capsys):
    monkeypatch.chdir(ws)
    monkeypatch.setattr(
        sys, "argv", ["train.py", "--model-name", "x", "--dataset-name", "SQuAD", "--debug"]
    )
    with pytest.raises(ValueError, match="unknown dataset"):
        runpy.run_path(str(ROOT / "scripts" / "train.py"), run_name="__main__")


@case("data-huge-row-trains")
def test_a_huge_row_trains_truncated(ws, prepared_huge, monkeypatch, capsys):
    """Training truncates to the task's max length (the protocol), so the same row trains."""
    args = ["--model-name", ws / "tiny", "--dataset-name", "BoolQ", "--data-dir", prepared_huge]
    args += ["--max-train-samples", "8", "--output-dir", ws / "huge-ckpt"]
    code, err, _ = run_script("train.py", args, monkeypatch, capsys, ws)
    assert code == 0, err[-2000:]
    assert (ws / "huge-ckpt" / "adapter.safetensors").is_file()


@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
@pytest.mark.filterwarnings("ignore:For backward hooks to be called:UserWarning")
@pytest.mark.parametrize("fault", [float("nan"), float("inf")], ids=["nan", "inf"])
@case("numeric-nan-gradient", "numeric-inf-gradient")
def test_non_finite_gradients_stop_training(ws, monkeypatch, capsys, fault):
    """A finite loss with NaN/inf gradients (as from an overflow in a half-precision backward
    pass): injected by a global backward hook on the norms, the real script stops at step 1."""

    def hook(module, grad_input, grad_output):
        if type(module).__name__.endswith("RMSNorm"):
            return tuple(None if g is None else g * fault for g in grad_input)
        return None

    handle = torch.nn.modules.module.register_module_full_backward_hook(hook)
    try:
        args = ["--model-name", ws / "tiny", "--dataset-name", "BoolQ", "--data-dir", ws / "data"]
        args += ["--max-train-samples", "16", "--output-dir", ws / f"grad-{fault}"]
        code, err, _ = run_script("train.py", args, monkeypatch, capsys, ws)
    finally:
        handle.remove()
    assert code == 2, err[-2000:]
    assert "error: gradients are NaN or infinite at optimizer step 1" in err
    assert "lower --lr, or train in --dtype float32" in err and "Traceback" not in err
    assert not (ws / f"grad-{fault}").exists()


@case("numeric-empty-generations")
def test_empty_generations_score_as_wrong(ws, monkeypatch, capsys):
    """A model that only ever emits padding: every output is '' and scored wrong, no crash."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(ws / "tiny", ws / "mute")
    weights = load_file(ws / "mute" / "model.safetensors")
    weights["model.norm.weight"].zero_()  # all logits 0 -> token 0, the pad token
    save_file(weights, ws / "mute" / "model.safetensors", metadata={"format": "pt"})
    args = ["--model-name", ws / "mute", "--dataset-name", "BoolQ", "--data-dir", ws / "data"]
    args += ["--output-dir", ws / "mute-eval"]
    code, err, _ = run_script("inference.py", args, monkeypatch, capsys, ws)
    assert code == 0, err[-2000:]
    records = [json.loads(line) for line in (ws / "mute-eval/test.json").read_text().splitlines()]
    assert records and all(r["output"] == "" and r["eval"] is False for r in records)
    metrics = json.loads((ws / "mute-eval/test.metrics.json").read_text())
    assert metrics["accuracy"] == 0.0 and metrics["n"] == len(records)


CODE = "__import__('pathlib').Path('{marker}').touch() or 'yes'"


@case("safety-parsers-never-evaluate")
@pytest.mark.parametrize("name", list(TASKS))
def test_parsers_never_run_model_output(tmp_path, name):
    task = get_task(name)
    marker = tmp_path / "PWNED"
    code = CODE.format(marker=marker)
    row = task.synthetic_split("test", 1, seed=0)[0]
    outputs = [code, f"<answer>{code}</answer>", f"The answer is {code}", "", "\x00\xff" * 50]
    for output in outputs:
        assert task.score(output, task.label(row)) is False
    assert not marker.exists()


# --- nothing lost: interruptions, failures elsewhere, concurrent writers ---------------------


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory):
    """GRID run to completion once; tests copy it (metadata and modification times too)."""
    return run_config(tmp_path_factory.mktemp("grid"), "grid.yaml", GRID)[0]


def copy_grid(finished_grid: Path, dest: Path) -> Path:
    shutil.copytree(finished_grid, dest, symlinks=True)
    return dest


def fingerprint(work: Path, *parts: str) -> dict[str, tuple[int, bytes]]:
    """(modification time, bytes) of every file under ``work/parts``."""
    out = {}
    for part in parts:
        for p in sorted((work / part).rglob("*")):
            if p.is_file():
                out[str(p.relative_to(work))] = (p.stat().st_mtime_ns, p.read_bytes())
    return out


def with_variants(**variants) -> str:
    config = json.loads(json.dumps(GRID))
    config["variants"].update(variants)
    return yaml.safe_dump(config)


def processes_in(work: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd") == str(work):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


A_RUN = "results/runs/tiny/BoolQ/a/seed0"


@pytest.mark.slow
@case("pipeline-killed-job", "pipeline-concurrent-runs")
def test_a_killed_job_is_redone_and_nothing_finished_is_touched(finished_grid, tmp_path):
    """Everything killed at once (a crash) during a new variant's training: its outputs are
    not taken as complete, a second Snakemake in the same directory meanwhile is refused, and
    the rerun redoes that job alone, leaving the finished run's files byte- and time-equal."""
    work = copy_grid(finished_grid, tmp_path / "w").resolve()
    (work / "b.yaml").write_text(with_variants(b={"rank": 4, "epochs": 400}))
    kept = fingerprint(work, A_RUN, "results/tables")
    log = work / "results/logs/train/tiny/BoolQ/b/seed0.log"
    first = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--configfile", "b.yaml", "--cores", "2"],
        cwd=work,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (log.exists() and "trainable params" in log.read_text()):
        assert first.poll() is None, first.stdout.read()[-4000:]
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    second = snakemake(work, "--configfile", "b.yaml", "--cores", "1")
    assert second.returncode != 0
    assert "cannot be locked" in second.stdout + second.stderr, second.stderr[-2000:]
    os.killpg(first.pid, signal.SIGKILL)
    for pid in processes_in(work):  # a crash takes the job's processes too
        os.kill(pid, signal.SIGKILL)
    first.wait(timeout=60)

    b_run = work / "results/runs/tiny/BoolQ/b/seed0"
    assert not (b_run / "checkpoint/training.json").exists()
    assert not (b_run / "test.metrics.json").exists()
    assert fingerprint(work, A_RUN, "results/tables") == kept
    dry = snakemake(work, "--configfile", "b.yaml", "-n")
    counts = job_counts(dry.stdout)
    assert {k: counts.get(k) for k in ("train", "evaluate", "aggregate", "prepare_data")} == {
        "train": 1,
        "evaluate": 1,
        "aggregate": 1,
        "prepare_data": None,
    }, dry.stdout[-3000:]
    assert "Missing output files" in dry.stdout  # nothing of the cut-short job counts

    # A crash leaves Snakemake's lock behind; --unlock (as its message says) clears it. The
    # rerun trains b for fewer epochs, to keep the test short (a's settings are unchanged).
    assert snakemake(work, "--configfile", "b.yaml", "--unlock").returncode == 0
    (work / "b.yaml").write_text(with_variants(b={"rank": 4, "epochs": 20}))
    done = snakemake(work, "--configfile", "b.yaml", "--cores", "2", timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert fingerprint(work, A_RUN) == {k: v for k, v in kept.items() if k.startswith(A_RUN)}
    table = pd.read_csv(work / "results/tables/long.csv")
    assert set(table["variant"]) == {"a", "b"}


@pytest.mark.slow
@case("pipeline-failure-elsewhere")
def test_a_failing_run_leaves_the_others_with_keep_going(finished_grid, tmp_path):
    """One new variant diverges (NaN loss), another trains: with --keep-going the good one
    finishes, the pipeline exits non-zero, no table is rewritten, the finished run is not
    touched; the failure's log says why."""
    work = copy_grid(finished_grid, tmp_path / "w").resolve()
    (work / "kg.yaml").write_text(
        with_variants(c={"rank": 3, "lr": 1e30, "epochs": 3}, d={"rank": 5})
    )
    kept = fingerprint(work, A_RUN, "results/tables")
    proc = snakemake(work, "--configfile", "kg.yaml", "--cores", "2", "--keep-going")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert (work / "results/runs/tiny/BoolQ/d/seed0/test.metrics.json").is_file(), out[-3000:]
    assert not (work / "results/runs/tiny/BoolQ/c/seed0/checkpoint").exists()
    log = (work / "results/logs/train/tiny/BoolQ/c/seed0.log").read_text()
    assert "error: the training loss is nan at optimizer step" in log
    assert fingerprint(work, A_RUN, "results/tables") == kept
    counts = job_counts(out)
    assert counts.get("train") == 2 and "make_tiny_model" not in counts, out[-3000:]


@case("tables-concurrent-writers")
def test_concurrent_aggregations_write_whole_tables(finished_grid, tmp_path):
    """Three aggregations at once into the same directory: each exits 0, every table is whole
    (equal to a lone run's) and no temporary file is left."""
    metrics = sorted(str(p) for p in (finished_grid / "results/runs").rglob("*.metrics.json"))

    def aggregate(out: Path):
        return subprocess.Popen(
            [sys.executable, str(ROOT / "scripts/aggregate.py"), "--metrics", *metrics]
            + ["--out-dir", str(out / "tables"), "--plots-dir", str(out / "plots")],
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    lone = aggregate(tmp_path / "lone")
    assert lone.wait(timeout=300) == 0, lone.stderr.read()
    together = [aggregate(tmp_path / "shared") for _ in range(3)]
    for p in together:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    shared = files_under(tmp_path / "shared")
    assert shared == files_under(tmp_path / "lone")
    assert not any(".tmp-" in name for name in shared)
    for name in shared:
        if name.endswith((".csv", ".md", ".tex")):
            assert (tmp_path / "shared" / name).read_text() == (
                tmp_path / "lone" / name
            ).read_text(), name


@pytest.mark.slow
@case("tables-incomplete-sweep-point")
def test_a_sweep_point_missing_a_seed_is_named_never_compared(tmp_path):
    """A point whose validation run of one seed failed (its jobs under --keep-going) is named
    and left out of the selection, never compared on the seeds it has; with
    --require-complete nothing is written."""
    paths = []
    for point, accs in {"lr=0.001": (0.5, 0.5), "lr=0.002": (0.9, None)}.items():
        for seed, acc in enumerate(accs):
            for split in ("validation", "test"):
                if acc is None and split == "validation":
                    continue  # this seed's evaluation failed
                path = tmp_path / f"runs/m/BoolQ/s@{point}/seed{seed}/{split}.metrics.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"accuracy": acc or 0.9, "n": 10}))
                paths.append(path)
    out = tmp_path / "tables"
    script = [sys.executable, "scripts/aggregate.py", "--metrics", *map(str, paths)]
    script += ["--out-dir", str(out), "--plots-dir", str(tmp_path / "plots")]
    done = subprocess.run(script, cwd=ROOT, env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "warning: m/BoolQ/s@lr=0.002 lacks validation for seed(s) 1" in done.stderr
    chosen = pd.read_csv(out / "selection.csv")
    assert list(chosen["point"]) == ["lr=0.001"] and list(chosen["points"]) == [1]
    strict = subprocess.run(
        [*script[:-4], "--out-dir", str(tmp_path / "strict"), "--require-complete"],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert strict.returncode == 2 and "error: 1 run splits missing" in strict.stderr
    assert "Traceback" not in strict.stderr and not (tmp_path / "strict").exists()


@case("eval-killed")
def test_a_killed_evaluation_leaves_no_complete_looking_file(ws, tmp_path):
    """inference.py killed while the second split runs: the first split's files are whole, the
    second's absent (a stray temp file at most), so neither a user nor Snakemake trusts them."""
    task = get_task("GSM8K")  # 100 new tokens per row: each split takes about a second
    write_prepared(
        task, task.make_splits(task.synthetic(scale=0.05)), tmp_path / "data", {"kind": "s"}
    )
    args = ["--model-name", ws / "tiny", "--dataset-name", "GSM8K", "--data-dir", tmp_path / "data"]
    args += ["--split", "validation", "test", "--eval-batch-size", "4"]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts/inference.py"), *map(str, args)]
        + ["--output-dir", str(tmp_path / "out"), "--no-progress"],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = tmp_path / "out" / "validation.metrics.json"
    deadline = time.monotonic() + 300
    while not first.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.kill()
    proc.wait(timeout=60)
    out = tmp_path / "out"
    records = (out / "validation.json").read_text().splitlines()
    assert len(records) == json.loads(first.read_text())["n"] > 0
    assert not (out / "test.json").exists() and not (out / "test.metrics.json").exists()


def test_docs_list_every_case():
    """docs/reliability.md names exactly the cases driven here and in test_io_faults.py, with
    the count."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    section = text.split("## Reliability", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `([a-z0-9-]+)`", section, re.MULTILINE))
    assert listed == COVERED, (sorted(COVERED - listed), sorted(listed - COVERED))
    assert f"{len(COVERED)} cases" in section
