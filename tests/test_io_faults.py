"""I/O faults through the real scripts (in-process), on real read-only and full file systems
(``tests/mounts.py``): each stops with one ``error:`` line naming the path, the errno's
meaning and what to do, exit 2, no traceback and no partial file; a read-only or full target
stops the run before anything is loaded; a finished training whose checkpoint cannot be
written is rescued whole and loads back to the same outputs.

The case ids are listed in docs/reliability.md with the others.
"""

import json
import os

import pytest
from safetensors.torch import load_file

from steering.loading.tiny import save_tiny_model
from steering.tasks import get_task
from steering.tasks.files import write_prepared
from tests.cases import case, cases
from tests.mounts import full_tmpfs, read_only_dir
from tests.workflow import files_under, run_script

TRAIN = ["--max-train-samples", "16", "--seed", "3"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("io-faults")
    save_tiny_model(ws / "tiny", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    splits = task.make_splits(task.synthetic(scale=0.02))
    write_prepared(task, splits, ws / "data", {"kind": "synthetic"})
    return ws


@pytest.fixture(scope="module")
def ro(ws):
    with read_only_dir(ws / "ro") as d:
        yield d


def with_model(name, args, ws):
    """The tiny model, BoolQ and its data for the scripts that load them."""
    if name not in ("train.py", "inference.py"):
        return args
    return [
        "--model-name",
        ws / "tiny",
        "--dataset-name",
        "BoolQ",
        "--data-dir",
        ws / "data",
    ] + args


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


READ_ONLY = cases(
    [
        pytest.param("train.py", ["--output-dir", "{ro}/run"], "{ro}/run", id="io-read-only-train"),
        pytest.param(
            "train.py",
            ["--output-dir", "{ws}/run", "--train-log", "{ro}/log.jsonl"],
            "{ro}",
            id="io-read-only-train-log",
        ),
        pytest.param(
            "train.py",
            ["--output-dir", "{ws}/run", "--save-steps", "1", "--resume-dir", "{ro}/resume"],
            "{ro}/resume",
            id="io-read-only-resume-dir",
        ),
        pytest.param(
            "inference.py", ["--output-dir", "{ro}/eval"], "{ro}/eval", id="io-read-only-evaluation"
        ),
        pytest.param(
            "prepare_data.py",
            ["--dataset-name", "BoolQ", "--synthetic", "--out", "{ro}/data"],
            "{ro}/data",
            id="io-read-only-prepare",
        ),
        pytest.param(
            "aggregate.py",
            ["--metrics", "{ws}/run/test.metrics.json", "--out-dir", "{ro}/tables"],
            "{ro}/tables",
            id="io-read-only-aggregate",
        ),
        pytest.param(
            "make_tiny_model.py", ["--out", "{ro}/model"], "{ro}/model", id="io-read-only-model"
        ),
    ]
)


@pytest.mark.parametrize("name, args, named", READ_ONLY)
def test_a_read_only_target_stops_before_any_work(ws, ro, monkeypatch, capsys, name, args, named):
    given = with_model(name, [a.format(ws=ws, ro=ro) for a in args], ws)
    before = files_under(ws)
    code, err, out = run_script(name, given, monkeypatch, capsys, ws)
    line = one_error(err)
    assert code == 2
    assert named.format(ws=ws, ro=ro) in line
    assert "read-only file system (EROFS)" in line or "permission denied (EACCES)" in line
    assert "checked before any work: nothing was loaded" in line
    assert "trainable params" not in out  # no model was built, no data tokenized
    assert files_under(ws) == before


@case("io-full-disk-before-work")
def test_a_full_target_stops_before_any_work(ws, tmp_path, monkeypatch, capsys):
    with full_tmpfs(tmp_path / "mnt", free=0) as mnt:
        args = with_model("train.py", ["--output-dir", mnt / "run"], ws)
        code, err, out = run_script("train.py", args, monkeypatch, capsys, ws)
        line = one_error(err)
        assert code == 2 and "no space left on device (ENOSPC)" in line
        assert f"free space on {mnt} (df -h {mnt}), or pass --output-dir elsewhere" in line
        assert "trainable params" not in out and os.listdir(mnt) == ["filler"]


@case("io-full-disk-at-final-save")
def test_a_full_disk_at_the_final_save_keeps_the_trained_weights(ws, tmp_path, monkeypatch, capsys):
    """Room for the probe and the weights, not for the whole checkpoint: training runs to the
    end, the save fails, and the same checkpoint lands in the rescue directory, loading back
    to the same outputs as an ordinary run of the same command; resume checkpoints stay."""
    monkeypatch.setenv("STEERING_RESCUE_DIR", str(tmp_path / "rescue"))
    (tmp_path / "rescue").mkdir()
    resume = ["--save-steps", "1", "--resume-dir", tmp_path / "resume"]
    with full_tmpfs(tmp_path / "mnt", free=8192) as mnt:
        args = with_model("train.py", ["--output-dir", mnt / "run", *TRAIN, *resume], ws)
        code, err, out = run_script("train.py", args, monkeypatch, capsys, ws)
        line = one_error(err)
        assert code == 2 and "trainable params" in out  # it trained
        assert f"cannot write {mnt}/run/" in line and "(ENOSPC)" in line
        assert os.listdir(mnt) == ["filler"]  # no half checkpoint, no stage directory
    (rescued,) = (tmp_path / "rescue").iterdir()
    assert f"the whole checkpoint is in {rescued}" in err
    assert f"`mv {rescued} {mnt}/run`" in err
    assert f"the resume checkpoints in {tmp_path / 'resume'} are kept" in err
    assert any(p.name.startswith("checkpoint-") for p in (tmp_path / "resume").iterdir())

    args = with_model("train.py", ["--output-dir", tmp_path / "ref", *TRAIN], ws)
    assert run_script("train.py", args, monkeypatch, capsys, ws)[0] == 0
    ours = load_file(rescued / "adapter.safetensors")
    ref = load_file(tmp_path / "ref" / "adapter.safetensors")
    assert ours.keys() == ref.keys() and all(ours[k].equal(ref[k]) for k in ref)
    assert json.loads((rescued / "training.json").read_text())["optimizer_steps"] > 0
    generations, run = {}, (monkeypatch, capsys, ws)
    for name, ckpt in (("rescued", rescued), ("ref", tmp_path / "ref")):
        args = ["--ckpt-path", ckpt, "--split", "validation", "--output-dir", tmp_path / name]
        code, err, _ = run_script("inference.py", with_model("inference.py", args, ws), *run)
        assert code == 0, err[-2000:]
        records = (tmp_path / name / "validation.json").read_text().splitlines()
        generations[name] = [json.loads(r)["output"] for r in records]
    assert generations["rescued"] == generations["ref"]


@case("io-full-disk-evaluation", "io-full-disk-prepare")
def test_a_disk_that_fills_while_writing_leaves_no_partial_file(ws, tmp_path, monkeypatch, capsys):
    with full_tmpfs(tmp_path / "mnt", free=4096) as mnt:
        args = with_model(
            "inference.py", ["--split", "validation", "--output-dir", mnt / "eval"], ws
        )
        code, err, _ = run_script("inference.py", args, monkeypatch, capsys, ws)
        line = one_error(err)
        assert code == 2 and f"cannot write {mnt}/eval/validation" in line and "(ENOSPC)" in line
        assert files_under(mnt) == ["filler"]
    with full_tmpfs(tmp_path / "mnt2", free=8192) as mnt:
        args = ["--dataset-name", "BoolQ", "--synthetic", "--out", mnt / "data"]
        code, err, _ = run_script("prepare_data.py", args, monkeypatch, capsys, ws)
        line = one_error(err)
        assert code == 2 and f"cannot write {mnt}/data/" in line and "--out elsewhere" in line
        assert os.listdir(mnt) == ["filler"]  # no split without its manifest, no stage
