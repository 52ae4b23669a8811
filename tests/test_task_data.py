"""Carving, local and prepared loading, and every bad-input error of the task loaders."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from steering.tasks import TASKS, DataError, get_task
from steering.tasks.files import content_hash, write_prepared
from tests.conftest import cpu_env

ROOT = Path(__file__).resolve().parent.parent
# target -> (source split, part of carve(source, p)); None = the source split itself
PARTS = {
    "BoolQ": {"validation": ("validation", 0.2, "train"), "test": ("validation", 0.2, "test")},
    "Winogrande": {"validation": ("validation", 0.5, "train"), "test": ("validation", 0.5, "test")},
    "GSM8K": {"validation": ("test", 0.2, "test"), "test": ("test", 0.2, "train")},
    "ARC_Challenge": {
        "validation": ("validation", 0.5, "train"),
        "test": ("validation", 0.5, "test"),
    },
    "AQuA": {"validation": None, "test": None},
    "ListOps": {"validation": None, "test": None},
}


@pytest.fixture(scope="module")
def raws():
    """Small generated source splits for every task, each row tagged with its origin."""
    out = {}
    for name, task in TASKS.items():
        raw = task.synthetic(seed=3, scale=0.1)
        out[name] = DatasetDict(
            {
                s: ds.add_column("_origin", [f"{s}:{i}" for i in range(len(ds))])
                for s, ds in raw.items()
            }
        )
    return out


@pytest.mark.parametrize("name", list(TASKS))
def test_carving_is_the_specified_split(name, raws):
    task, raw = get_task(name), raws[name]
    splits = task.make_splits(raw)
    assert list(splits) == ["train", "validation", "test"]
    assert splits["train"]["_origin"] == raw["train"]["_origin"]  # train is the source train
    for target, plan in PARTS[name].items():
        if plan is None:
            assert splits[target]["_origin"] == raw[target]["_origin"]
            continue
        source, p, part = plan
        expected = raw[source].shuffle(seed=42).train_test_split(test_size=p, seed=42)[part]
        assert splits[target]["_origin"] == expected["_origin"]
    if PARTS[name]["validation"] is not None:  # carved parts: disjoint and complete
        val, test = set(splits["validation"]["_origin"]), set(splits["test"]["_origin"])
        source = PARTS[name]["validation"][0]
        assert not val & test and val | test == set(raw[source]["_origin"])
    again = task.make_splits(raw)
    assert all(content_hash(again[s]) == content_hash(splits[s]) for s in splits)


def test_gsm8k_validation_is_the_small_carved_part(raws):
    splits = get_task("GSM8K").make_splits(raws["GSM8K"])
    n = len(raws["GSM8K"]["test"])
    assert len(splits["validation"]) == -(-n * 2 // 10)  # ceil(0.2 n): the carve's *test* part
    assert len(splits["test"]) == n - len(splits["validation"])


def test_make_splits_names_missing_source_splits(raws):
    with pytest.raises(DataError, match=r"source split\(s\) \['validation'\] missing"):
        get_task("BoolQ").make_splits(DatasetDict(train=raws["BoolQ"]["train"]))


def _write_source(raw: DatasetDict, directory: Path, fmt: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, ds in raw.items():
        ds = ds.remove_columns([c for c in ds.column_names if c.startswith("_")])
        if fmt == "parquet":
            ds.to_parquet(str(directory / f"{split}.parquet"))
        else:
            ds.to_json(str(directory / f"{split}.jsonl"), lines=True)
    return directory


@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_load_from_local_source_files(name, fmt, raws, tmp_path):
    task = get_task(name)
    loaded = task.load(data_dir=_write_source(raws[name], tmp_path / name, fmt))
    expected = task.make_splits(
        DatasetDict({s: d.remove_columns("_origin") for s, d in raws[name].items()})
    )
    for split in ("train", "validation", "test"):
        assert [task.prompt(r) for r in loaded[split]] == [task.prompt(r) for r in expected[split]]
        assert [task.label(r) for r in loaded[split]] == [task.label(r) for r in expected[split]]


def _jsonl(path: Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


GOOD = {"question": "q", "answer": True, "passage": "p"}


@pytest.mark.parametrize(
    "train_rows, message",
    [
        (
            [GOOD, {"question": "q", "passage": "p", "answer": "yes"}],
            r"split 'train' row 1: field 'answer' must be a boolean, got str 'yes'",
        ),
        (
            [GOOD, {"question": None, "answer": False, "passage": "p"}],
            r"split 'train' row 1: field 'question' must be a string, got NoneType",
        ),
        ([{"question": "q", "answer": True}], r"split 'train' has no column\(s\) \['passage'\]"),
    ],
)
def test_bad_rows_name_split_row_and_field(tmp_path, train_rows, message):
    _jsonl(tmp_path / "train.jsonl", train_rows)
    _jsonl(tmp_path / "validation.jsonl", [GOOD] * 5)
    with pytest.raises(DataError, match=message):
        get_task("BoolQ").load(data_dir=tmp_path)


@pytest.mark.parametrize(
    "name, row, message",
    [
        (
            "Winogrande",
            {"sentence": "s", "option1": "a", "option2": "b", "answer": "3"},
            "field 'answer' must be '1' or '2'",
        ),
        ("GSM8K", {"question": "q", "answer": "4"}, "no '####'"),
        ("GSM8K", {"question": "q", "answer": "x #### four"}, "not a number"),
        (
            "ARC_Challenge",
            {
                "id": "1",
                "question": "q",
                "choices": {"text": ["a"], "label": ["A"]},
                "answerKey": "B",
            },
            "answerKey 'B' is not one of the choice labels",
        ),
        (
            "ARC_Challenge",
            {"id": "1", "question": "q", "choices": {"text": ["a"], "label": []}, "answerKey": "A"},
            "field 'choices' must be an object",
        ),
        (
            "AQuA",
            {"question": "q", "options": ["A)1"], "rationale": "r", "correct": "F"},
            "must be one of A-E",
        ),
        (
            "AQuA",
            {"question": "q", "options": "A)1", "rationale": "r", "correct": "A"},
            "field 'options' must be a non-empty list of strings",
        ),
        ("ListOps", {"Source": "( [MAX 1 ] )", "Target": 12}, "field 'Target' must be a digit 0-9"),
        (
            "ListOps",
            {"Source": "( [MAX 1 ] )", "Target": "x"},
            "field 'Target' must be a digit 0-9",
        ),
    ],
)
def test_task_specific_row_checks(tmp_path, name, row, message):
    task = get_task(name)
    for split in task.source_splits:
        _jsonl(tmp_path / f"{split}.jsonl", [row] * 4)
    with pytest.raises(
        DataError, match=f"{task.name}: split '{task.source_splits[0]}' row 0: .*{message}"
    ):
        task.load(data_dir=tmp_path)


def test_missing_files_and_empty_splits(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        get_task("AQuA").load(data_dir=tmp_path / "nope")
    _jsonl(tmp_path / "train.jsonl", [GOOD])
    with pytest.raises(
        DataError,
        match=r"no file for source split 'validation': expected one of "
        r"\['validation.jsonl', 'validation.json', 'validation.parquet'\]"
        r" with columns question \(a string\)",
    ):
        get_task("BoolQ").load(data_dir=tmp_path)
    (tmp_path / "validation.jsonl").write_text("")
    with pytest.raises(DataError, match="validation"):
        get_task("BoolQ").load(data_dir=tmp_path)


def test_empty_split_is_named(tmp_path):
    task = get_task("BoolQ")
    empty = Dataset.from_dict({"question": [], "answer": [], "passage": []})
    with pytest.raises(DataError, match="split 'validation' is empty"):
        task.validate(DatasetDict(train=Dataset.from_list([GOOD]), validation=empty))


def test_offline_hub_fails_fast_and_says_how_to_provide_files(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.time()
    with pytest.raises(DataError) as e:
        get_task("Winogrande").load()
    assert time.time() - start < 10
    msg = str(e.value)
    assert "allenai/winogrande (winogrande_debiased)" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "train.jsonl, validation.jsonl" in msg and "option1 (a string)" in msg
    assert "--data-dir" in msg and "--synthetic" in msg


@pytest.mark.parametrize("name", list(TASKS))
def test_prepared_data_round_trip(name, raws, tmp_path):
    task = get_task(name)
    splits = task.make_splits(
        DatasetDict({s: d.remove_columns("_origin") for s, d in raws[name].items()})
    )
    manifest = write_prepared(task, splits, tmp_path, {"kind": "synthetic"})
    assert manifest["protocol_version"] == task.protocol_version
    assert {s: v["rows"] for s, v in manifest["splits"].items()} == {
        s: len(d) for s, d in splits.items()
    }
    loaded = task.load(data_dir=tmp_path)
    assert all(content_hash(loaded[s]) == content_hash(splits[s]) for s in splits)


def test_prepared_data_is_checked_against_its_manifest(raws, tmp_path):
    task = get_task("ListOps")
    splits = task.make_splits(
        DatasetDict({s: d.remove_columns("_origin") for s, d in raws["ListOps"].items()})
    )
    write_prepared(task, splits, tmp_path, {"kind": "synthetic"})
    splits["test"].select(range(3)).to_parquet(str(tmp_path / "test.parquet"))
    with pytest.raises(DataError, match="test.parquet does not match manifest.json"):
        task.load(data_dir=tmp_path)
    with pytest.raises(DataError, match="holds 'ListOps' data, not 'AQuA'"):
        get_task("AQuA").load(data_dir=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["protocol_version"] = 0
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="protocol version 0; this package uses version 1"):
        task.load(data_dir=tmp_path)


@pytest.mark.parametrize("name", list(TASKS))
def test_synthetic_data_is_deterministic_and_valid(name):
    task = get_task(name)
    a, b = task.synthetic(seed=1, scale=0.05), task.synthetic(seed=1, scale=0.05)
    c = task.synthetic(seed=2, scale=0.05)
    task.validate(a)
    assert set(a) == set(task.source_splits)
    assert all(content_hash(a[s]) == content_hash(b[s]) for s in a)
    assert any(content_hash(a[s]) != content_hash(c[s]) for s in a)
    for split in task.make_splits(a).values():  # gold completions parse as correct
        assert all(task.score(task.completion(r), task.label(r)) for r in split)


def _script(*args):
    env = cpu_env()
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/prepare_data.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_prepare_data_script(tmp_path):
    out = tmp_path / "GSM8K"
    proc = _script("--dataset-name", "GSM8K", "--synthetic", "--scale", "0.1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "GSM8K (protocol v1, synthetic): train 200, validation 10, test 40" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    assert len(get_task("GSM8K").load(data_dir=out)["test"]) == 40
    bad = _script("--dataset-name", "BoolQ", "--out", str(tmp_path / "BoolQ"))
    assert bad.returncode == 2 and "error: BoolQ: dataset google/boolq" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "BoolQ").exists()
    unknown = _script("--dataset-name", "Nope", "--synthetic", "--out", str(tmp_path / "x"))
    assert unknown.returncode == 2 and "valid names" in unknown.stderr


@pytest.mark.parametrize(
    "dataset, rows, chance",
    [
        # uniform over each row's choices
        (
            "ARC_Challenge",
            [{"choices": {"label": list("ABCD")}, "answerKey": "A"}] * 3
            + [{"choices": {"label": list("ABC")}, "answerKey": "A"}],
            (3 / 4 + 1 / 3) / 4,
        ),
        ("AQuA", [{"options": ["A)1", "B)2", "C)3", "D)4", "E)5"], "correct": "A"}] * 2, 0.2),
        ("Winogrande", [{"answer": "1"}, {"answer": "1"}, {"answer": "1"}], 0.5),
        # the majority class
        ("BoolQ", [{"answer": True}, {"answer": False}, {"answer": True}], 2 / 3),
        ("ListOps", [{"Target": 3}, {"Target": 3}, {"Target": 7}, {"Target": 1}], 0.5),
        ("GSM8K", [{"answer": "x #### 5"}, {"answer": "y #### 6"}], 0.5),
    ],
)
def test_chance_is_uniform_over_choices_or_the_majority_class(dataset, rows, chance):
    assert get_task(dataset).chance(rows) == pytest.approx(chance)
    assert get_task(dataset).chance([]) == 0.0
