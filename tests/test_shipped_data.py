"""The real data shipped in data/: its manifest matches its files, no row is in two splits,
every task loads through the local-data path into train / validation / test, and the carving
of the missing splits is deterministic and a partition of the public rows."""

import json
import shutil

import pytest

from steering.tasks import get_task
from steering.tasks.shipped import CARVED, SHIPPED_TASKS, build, check, read_lines, repo_root

DATA = repo_root() / "data"


def test_manifest_matches_files_and_no_row_is_in_two_splits():
    assert check(DATA) == []
    manifest = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(manifest["tasks"]) == sorted(SHIPPED_TASKS)
    for task, info in manifest["tasks"].items():
        # every split the protocol reads is shipped, and carved splits say how they were made
        assert set(get_task(task).source_splits) <= {
            n.removesuffix(".jsonl") for n in info["files"]
        }
        for split in CARVED.get(task, {}):
            assert "carve(" in info["files"][f"{split}.jsonl"]["made"]


@pytest.mark.parametrize("name", SHIPPED_TASKS)
def test_every_task_loads_into_disjoint_splits(name):
    task = get_task(name)
    splits = task.load(DATA / name)
    prompts = {s: {task.prompt(ex) for ex in splits[s]} for s in ("train", "validation", "test")}
    assert all(prompts.values())
    assert not prompts["train"] & prompts["validation"]
    assert not prompts["train"] & prompts["test"]
    assert not prompts["validation"] & prompts["test"]
    shipped = sum(len(read_lines(DATA / name / f"{s}.jsonl")) for s in task.source_splits)
    assert sum(len(splits[s]) for s in splits) == shipped


def small_source(tmp_path):
    """A public-file tree of BoolQ with 40 validation rows (only: train is carved)."""
    src = tmp_path / "src" / "BoolQ"
    src.mkdir(parents=True)
    lines = read_lines(DATA / "BoolQ" / "validation.jsonl")[:40]
    (src / "validation.jsonl").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return tmp_path / "src", lines


def test_carve_is_deterministic_and_a_partition(tmp_path):
    src, lines = small_source(tmp_path)
    a = build(src, tmp_path / "a", tasks=("BoolQ",))
    b = build(src, tmp_path / "b", tasks=("BoolQ",))
    assert a == b
    for split in ("train", "validation"):
        assert (tmp_path / "a/BoolQ" / f"{split}.jsonl").read_bytes() == (
            tmp_path / "b/BoolQ" / f"{split}.jsonl"
        ).read_bytes()
    train = read_lines(tmp_path / "a/BoolQ/train.jsonl")
    rest = read_lines(tmp_path / "a/BoolQ/validation.jsonl")
    assert sorted(train + rest) == sorted(lines)  # every public row once, verbatim
    assert len(train) == 20 and not set(train) & set(rest)
    assert train != lines[:20]  # shuffled, not a head/tail cut
    assert check(tmp_path / "a") == []


def test_check_reports_an_edited_file_and_a_leaked_row(tmp_path):
    src, _ = small_source(tmp_path)
    build(src, tmp_path / "a", tasks=("BoolQ",))
    train = tmp_path / "a/BoolQ/train.jsonl"
    leaked = read_lines(tmp_path / "a/BoolQ/validation.jsonl")[0]
    shutil.copy(train, tmp_path / "train.bak")
    train.write_text(train.read_text(encoding="utf-8") + leaked + "\n", encoding="utf-8")
    problems = check(tmp_path / "a")
    assert any("train.jsonl" in p and "the manifest says" in p for p in problems)
    assert any("also in" in p for p in problems)
