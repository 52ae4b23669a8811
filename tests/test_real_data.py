"""The project on real rows: samples of the public data of five tasks (tests/data/real, hub
schema; sources and licences in its README) read by prepare_data.py, prompts and completions
pinned to the exact text, and both parsers on every gold completion."""

import json
import runpy
import sys
from pathlib import Path

import pytest

from steering.tasks import get_task
from steering.tasks.files import read_prepared

REAL = Path(__file__).parent / "data" / "real"
TASKS = ("BoolQ", "Winogrande", "GSM8K", "ARC_Challenge", "AQuA")


def rows(task: str, split: str) -> list[dict]:
    lines = (REAL / task / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def splits_of(task: str) -> list[str]:
    return sorted(p.stem for p in (REAL / task).glob("*.jsonl"))


@pytest.mark.parametrize("name", TASKS)
def test_prepare_data_reads_the_real_files(name, tmp_path, monkeypatch, capsys):
    out = tmp_path / name
    argv = ["prepare_data.py", "--dataset-name", name, "--data-dir", str(REAL / name)]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out)])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(
            str(Path(__file__).parent.parent / "scripts/prepare_data.py"), run_name="__main__"
        )
    assert e.value.code == 0, capsys.readouterr().err
    task = get_task(name)
    prepared = read_prepared(task, out)
    # every source row lands in exactly one split; train is the source train split whole
    source_rows = sum(len(rows(name, s)) for s in task.source_splits)
    assert sum(len(prepared[s]) for s in ("train", "validation", "test")) == source_rows
    assert list(prepared["train"]) == rows(name, "train")


PINNED = [
    (
        "BoolQ",
        "train",
        6,
        "Answer the question with a true/false based on the given passage.\n"
        "Passage: Gamblers' winnings in Australia are not taxed . There are 3 main reasons for "
        "that:\nQuestion: do you pay tax on gambling winnings in australia\n",
        "Answer: False.",
        "False",
    ),
    (
        "Winogrande",
        "validation",
        0,
        "Please choose the correct answer to fill in the blank to complete the given sentence: "
        "Sarah was a much better surgeon than Maria so _ always got the easier cases.\n"
        "Option1: Sarah\nOption2: Maria\n",
        "Answer: Option2.",
        2,
    ),
    (
        "GSM8K",
        "test",
        0,
        "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and "
        "bakes muffins for her friends every day with four. She sells the remainder at the "
        "farmers' market daily for $2 per fresh duck egg. How much in dollars does she make "
        "every day at the farmers' market?\n",
        "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = "
        "$<<9*2=18>>18 every day at the farmer’s market.\nAnswer: 18",
        18.0,
    ),
    (
        "ARC_Challenge",
        "test",
        0,
        "Answer the following multiple-choice question.\nQuestion: An astronomer observes "
        "that a planet rotates faster after a meteorite impact. Which is the most likely "
        "effect of this increase in rotation?\n(A) Planetary density will decrease.\n"
        "(B) Planetary years will become longer.\n(C) Planetary days will become shorter.\n"
        "(D) Planetary gravity will become stronger.\n",
        "Answer: (C) Planetary days will become shorter..",  # the protocol adds "." to "shorter."
        "C",
    ),
    (
        "ARC_Challenge",
        "train",
        16,
        "Answer the following multiple-choice question.\nQuestion: A chemical property of a "
        "mineral is evident if the mineral\n(1) breaks easily when struck with a hammer\n"
        "(2) bubbles when acid is placed on it\n(3) is easily scratched by a fingernail\n"
        "(4) reflects light from its surface\n",
        "Answer: (2) bubbles when acid is placed on it.",
        "2",
    ),
    (
        "AQuA",
        "test",
        1,
        "Answer the following multiple-choice math question.\nQuestion: The original price of "
        "an item is discounted 22%. A customer buys the item at this discounted price using a "
        "$20-off coupon. There is no tax on the item, and this was the only item the customer "
        "bought. If the customer paid $1.90 more than half the original price of the item, "
        "what was the original price of the item?\nA)$61\nB)$65\nC)$67.40\nD)$70\nE)$78.20\n",
        "Let x be the original price of the item\nDiscounted price = 0.78x\nPayment made by "
        "the customer after using the $20 coupon = 0.78x - 20\n0.78x - 20 = x/2 + 1.9\n"
        "x = 78.20\nAnswer: E\nAnswer: E.",
        "E",
    ),
]


@pytest.mark.parametrize(
    "name, split, index, prompt, completion, label",
    PINNED,
    ids=[f"{n}-{s}-{i}" for n, s, i, *_ in PINNED],
)
def test_real_prompts_and_completions_are_exact(name, split, index, prompt, completion, label):
    task = get_task(name)
    row = rows(name, split)[index]
    assert task.prompt(row) == prompt
    assert task.completion(row) == completion
    assert task.label(row) == label


# Gold completions the official parser scores wrong, by (task, source split): row -> why.
OFFICIAL_MISSES = {
    ("GSM8K", "test"): {
        i: "an answer >= 1000 without commas" for i in (2, 17, 24, 25, 26, 27, 28, 29)
    },
    ("GSM8K", "train"): {i: "an answer >= 1000 without commas" for i in (15, 21, 29)},
    ("AQuA", "validation"): {16: "'answer choice B)' reads the C of 'choice'"},
}


@pytest.mark.parametrize(
    "name, split", [(n, s) for n in TASKS for s in splits_of(n)], ids=lambda v: str(v)
)
def test_gold_completions_under_both_parsers(name, split):
    """The strict parser scores every real gold completion right; the official parser
    all but exactly the documented quirk rows."""
    task = get_task(name)
    data = rows(name, split)
    assert data, f"no rows in {name}/{split}"
    official_misses = set()
    for i, row in enumerate(data):
        gold, label = task.completion(row), task.label(row)
        assert task.score_strict(gold, label), (name, split, i, gold[-80:])
        if not task.score(gold, label):
            official_misses.add(i)
    expected = OFFICIAL_MISSES.get((name, split), {})
    assert official_misses == set(expected), (name, split, sorted(official_misses))
    if name == "GSM8K":
        for i in expected:  # the quirk: a final number of four or more digits, no comma
            assert task.label(data[i]) >= 1000 and "," not in task.completion(data[i]).split()[-1]


def test_prepare_data_prints_token_statistics_for_a_tokenizer(tmp_path, monkeypatch, capsys):
    from steering.data import tokenize_split, truncation_stats
    from steering.loading.loader import load_tokenizer
    from steering.loading.tiny import save_tiny_model
    from steering.tasks.base import length_profile

    save_tiny_model(tmp_path / "gemma", "gemma", hidden_size=32, num_layers=1)
    argv = [
        "prepare_data.py",
        "--dataset-name",
        "Winogrande",
        "--data-dir",
        str(REAL / "Winogrande"),
    ]
    argv += ["--out", str(tmp_path / "out"), "--tokenizer", str(tmp_path / "gemma")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as e:
        runpy.run_path(
            str(Path(__file__).parent.parent / "scripts/prepare_data.py"), run_name="__main__"
        )
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    assert "(chat template; max length 100; before truncation)" in out  # Gemma: the chat path
    header = next(line for line in out.splitlines() if line.split()[:2] == ["split", "rows"])
    assert header.split() == [
        "split",
        "rows",
        "mean",
        "p50",
        "p95",
        "max",
        "truncated",
        "unsupervised",
    ]
    task = get_task("Winogrande")
    splits = read_prepared(task, tmp_path / "out")
    tokenizer = load_tokenizer(str(tmp_path / "gemma"))
    for split in ("train", "validation", "test"):
        st = truncation_stats(tokenize_split(task, splits[split], tokenizer, chat=True), 100)
        row = next(line.split() for line in out.splitlines() if line.split()[:1] == [split])
        assert row == [
            split,
            *map(
                str,
                [
                    st["rows"],
                    st["mean_tokens"],
                    st["p50_tokens"],
                    st["p95_tokens"],
                    st["max_tokens"],
                    st["truncated"],
                    st["unsupervised"],
                ],
            ),
        ]
        if st["unsupervised_share"] > 0.01:
            assert (
                f"of Winogrande {split} rows ({st['unsupervised']} of {st['rows']}) train nothing"
                in err
            )
        if split == "train":  # the profile a task records for the plan, ready to paste
            features = tokenize_split(task, splits[split], tokenizer, chat=True)
            profile = length_profile(features["untruncated_length"])
            assert f"length profile of train (Task.length_quantiles): {profile}" in out
