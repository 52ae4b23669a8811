"""The official command line's four other datasets (ASDiv, SVAMP, MAWPS, MNLI): prompts,
completions and labels for hand-written rows in each hub schema, every branch of the official
and strict parsers, the carving, row checks, generated data, rewards, and a tiny train ->
evaluate round trip through the real scripts."""

import json

import pytest
from datasets import Dataset, DatasetDict

from steering.loading.tiny import save_tiny_model
from steering.pipeline.reference import reference
from steering.tasks import EXTRA_TASKS, TASKS, DataError, get_task
from steering.tasks.asdiv import PROMPT, normalize_trace
from steering.tasks.files import content_hash
from steering.tasks.rewards import default_weights, format_of
from tests.workflow import run_script

NAMES = ["ASDiv", "SVAMP", "MAWPS", "MNLI"]
LONG = "lorem ipsum " * 5000


def test_registry():
    assert list(EXTRA_TASKS) == NAMES
    assert not set(EXTRA_TASKS) & set(TASKS)  # no paper numbers: not among the six
    assert all(get_task(n) is EXTRA_TASKS[n] and get_task(n).name == n for n in NAMES)
    assert all(reference("Llama-3.2-1B", "LoRA r=8", n) is None for n in NAMES)  # no column
    with pytest.raises(ValueError, match=r"'AQuA', 'ASDiv', 'SVAMP', 'MAWPS', 'MNLI', 'ARC'"):
        get_task("mnli")


# name -> (hub id, config, max_new_tokens, epochs, max length, Gemma chat max length)
SETTINGS = {
    "ASDiv": ("MU-NLPC/Calc-asdiv_a", None, 100, 1, 256, 256),
    "SVAMP": ("ChilleD/SVAMP", None, 100, 1, 256, 256),
    "MAWPS": ("garrethlee/MAWPS", None, 20, 3, 256, 256),
    "MNLI": ("nyu-mll/glue", "mnli_matched", 100, 1, 100, 100),
}


@pytest.mark.parametrize("name", NAMES)
def test_sources_and_settings(name):
    t = get_task(name)
    got = (t.hub_id, t.hub_config, t.max_new_tokens, t.epochs)
    assert (*got, t.max_length_for(False), t.max_length_for(True)) == SETTINGS[name]


ROWS = {  # name -> (row in the hub schema, prompt, completion, label)
    "ASDiv": (
        {
            "id": "nluds-0007",
            "question": "  Ann has 3 boxes of 4 pens and 5 more pens. How many pens? ",
            "chain": '<gadget id="calculator">3 * 4</gadget>\n<output>12</output>\n\n'
            '<gadget id="calculator">12 + 5</gadget>\n<output>17</output>\n\n<result>17</result>',
            "result": "17",
            "result_float": 17.0,
            "result_unit": "pens",
            "grade": 2,
            "source_question": "...",
        },
        PROMPT + "Ann has 3 boxes of 4 pens and 5 more pens. How many pens?\n",
        '<call tool="calculator">3*4</call><call tool="calculator">12+5</call>'
        "<tool_output>12</tool_output><final>17</final>",
        17.0,
    ),
    "SVAMP": (
        {
            "ID": "chal-1",
            "Body": "Jack had 8 pens and Mary had 5 pens.",
            "Question": "How many more pens does Jack have than Mary?",
            "Equation": "( 8.0 - 5.0 )",
            "Answer": 3.0,
            "Type": "Subtraction",
            "question_concat": "...",
        },
        "Jack had 8 pens and Mary had 5 pens.\nHow many more pens does Jack have than Mary?\n",
        "( 8.0 - 5.0 ) Answer: 3.0",
        3.0,
    ),
    "MAWPS": (
        {"question": "Sam has 5 apples and finds 3. How many?", "answer": " x = 5 + 3 \n####  8 "},
        "Question: Sam has 5 apples and finds 3. How many?\n",
        "x = 5 + 3 Answer: 8",
        8.0,
    ),
    "MNLI": (
        {"premise": "A man sleeps.", "hypothesis": "A man is awake.", "label": 2, "idx": 4},
        "Read the following premise and hypothesis.\nDecide whether the hypothesis is ENTAILED "
        "by the premise, CONTRADICTED by the premise, or NEUTRAL.\n\nPremise:\nA man sleeps."
        "\n\nHypothesis:\nA man is awake.\n\nAnswer:",
        "Answer: CONTRADICTION.",
        "contradiction",
    ),
}


@pytest.mark.parametrize("name", NAMES)
def test_prompt_completion_label(name):
    row, prompt, completion, label = ROWS[name]
    task = get_task(name)
    assert task.prompt(row) == prompt
    assert task.completion(row) == completion
    assert task.label(row) == label and type(task.label(row)) is type(label)
    assert task.score(completion, label) and task.score_strict(completion, label)
    assert format_of(task, "", completion, label) == 1.0 and "format" in default_weights(name)


def test_mnli_classes_and_mawps_answers_without_hashes():
    mnli, mawps = get_task("MNLI"), get_task("MAWPS")
    for label, word in [(0, "ENTAILMENT"), (1, "NEUTRAL"), (2, "CONTRADICTION"), (-1, "UNKNOWN")]:
        assert mnli.completion({"label": label}) == f"Answer: {word}."
        assert mnli.label({"label": label}) == word.lower()
    assert mawps.completion({"answer": "7"}) == "7 Answer: 7"  # no '####': both halves
    assert mawps.completion({"answer": "a #### b #### 9"}) == "a Answer: 9"  # first / last
    assert get_task("SVAMP").completion(dict(ROWS["SVAMP"][0], Answer=3)) == (
        "( 8.0 - 5.0 ) Answer: 3"  # the value as the data holds it
    )


@pytest.mark.parametrize(
    "chain, expected",
    [
        (  # whitespace (newlines too) leaves the expression; the tool id is stripped
            '<gadget id=" calculator ">7 +\n 2</gadget>\n<output>9</output>\n<result>9</result>',
            '<call tool="calculator">7+2</call><tool_output>9</tool_output><final>9</final>',
        ),
        (  # no result: the first output is the final answer too
            '<gadget id="calculator">2*3</gadget><output>6</output>',
            '<call tool="calculator">2*3</call><tool_output>6</tool_output><final>6</final>',
        ),
        (  # no output: the result is the tool output
            "We count them. <result> 4 </result>",
            "<tool_output>4</tool_output><final>4</final>",
        ),
        (  # neither: no tool output, an empty final; the text between tags is dropped
            '<gadget id="calculator">1+1</gadget> so it is two',
            '<call tool="calculator">1+1</call><final></final>',
        ),
        (  # the first result and the first output, whatever comes after
            "<output> 5 </output><output>6</output><result>7</result><result>8</result>",
            "<tool_output>5</tool_output><final>7</final>",
        ),
        ("", "<final></final>"),
    ],
)
def test_asdiv_trace_normalisation(chain, expected):
    assert normalize_trace(chain) == expected


T = "<final>FINAL_ANSWER</final>"  # the prompt's line: only what follows it is read
GOLD = '<call tool="calculator">3+4</call><tool_output>7</tool_output><final>7</final>'
RUN_ON = "Answer: NEUTRAL.\n\nRead the following premise and hypothesis.\nDecide whether the "
RUN_ON += "hypothesis is ENTAILED by the premise"  # a trained model's run-on: "ENTAILED" wins
# task, output, label, official verdict, strict verdict
# fmt: off
PARSER_CASES = [
    # ASDiv: every candidate of the official parser; "any candidate" against "the first"
    ("ASDiv", GOLD, 7.0, True, True),
    ("ASDiv", f"<final>7</final> and {T} 5", 7.0, False, False),
    ("ASDiv", f"<final>7</final> and {T} 5", 5.0, True, True),
    ("ASDiv", "<final>3</final><final>4</final>", 4.0, True, False),  # any final / the first
    ("ASDiv", "<tool_output>8</tool_output><final>9</final>", 8.0, False, False),  # dropped
    ("ASDiv", "<final>9</final><tool_output>9.0</tool_output>", 9.0, True, True),  # agreeing
    ("ASDiv", "<tool_output>12</tool_output>", 12.0, True, True),  # no final
    ("ASDiv", "<final> </final><tool_output>6</tool_output>", 6.0, True, True),  # empty final
    ("ASDiv", "so\nFinal answer: 42 apples", 42.0, True, False),  # "42 apples"; last number
    ("ASDiv", "so 42\nFinal answer: 42", 42.0, True, True),
    ("ASDiv", "Final answer\n42", 42.0, True, True),  # the next line
    ("ASDiv", "so 5 apples\nFinal answer", 5.0, True, True),  # no next line: last number
    ("ASDiv", "answer - 7", 7.0, True, True),
    ("ASDiv", "x = 3 + 4 = 7 and more", 7.0, True, True),  # the line's last "= N"
    ("ASDiv", "= 3\n= 4", 3.0, True, False),  # one candidate a line, the last line first
    ("ASDiv", "model\nmodel Answer: 5", 5.0, True, True),  # a chat role's name removed
    ("ASDiv", "<final>(12)</final>", 12.0, True, True),  # one layer of brackets
    ("ASDiv", "<final>[1,234]</final>", 1234.0, True, True),  # commas removed
    ("ASDiv", "<final>x = y = 5</final>", 5.0, True, True),  # after the first '=', again
    ("ASDiv", "<final>five</final>", 5.0, False, False),
    ("ASDiv", "<final>()</final>", 0.0, False, False),  # nothing inside the brackets
    ("ASDiv", "<final>1e1</final>", 10.0, True, False),  # float() reads it; strict does not
    ("ASDiv", "<final>\u0667</final>", 7.0, True, False),  # other scripts' digits
    ("ASDiv", "<final>inf</final>", float("inf"), False, False),  # never finite
    ("ASDiv", "<final>7</final>", "seven", False, False),  # a label that is no number
    ("ASDiv", "<final>7.0000000001</final>", 7.0, True, True),  # isclose, rel 1e-9
    ("ASDiv", "", 0.0, False, False),
    ("ASDiv", LONG + "<final>18</final>", 18.0, True, True),
    # SVAMP and MAWPS: GSM8K's parser, its quirk on numbers of four digits and more
    ("SVAMP", "( 8.0 - 5.0 ) Answer: 3.0", 3.0, True, True),
    ("SVAMP", "( 40.0 * 30.0 ) Answer: 1200.0", 1200.0, False, True),
    ("SVAMP", "Answer: 7.5 pens", 7.5, True, True),
    ("SVAMP", "it is 12", 12.0, True, True),  # no answer line: the last number
    ("SVAMP", "Answer: \u0661\u0662", 12.0, True, False),
    ("MAWPS", "x = 5 + 3 Answer: 8", 8.0, True, True),
    ("MAWPS", "x = 1234 Answer: 1234", 1234.0, False, True),
    ("MAWPS", "Answer: 8\nQuestion: next\nAnswer: 9", 9.0, True, True),  # the last answer line
    ("MAWPS", "", 1.0, False, False),
    # MNLI: the official defaults to neutral and lets any "entailed" win; strict: the first
    ("MNLI", "Answer: CONTRADICTION.", "contradiction", True, True),
    ("MNLI", " NEUTRAL.", "neutral", True, True),  # no answer marker: the whole output
    ("MNLI", "I cannot tell", "neutral", True, False),  # no class word: official neutral
    ("MNLI", "   ", "neutral", True, False),  # spaces are not empty to the official parser
    ("MNLI", "", "neutral", False, False),
    ("MNLI", "answer:contradicts", "contradiction", True, True),
    ("MNLI", "ANSWER: Entailed", "entailment", True, True),
    ("MNLI", "Answer: entailments", "entailment", True, True),
    ("MNLI", RUN_ON, "neutral", False, True),
    ("MNLI", "Answer: CONTRADICTION. Not an entailment", "contradiction", False, True),
    ("MNLI", "It is entailed. Answer: NEUTRAL", "neutral", True, True),  # after "answer:"
    ("MNLI", "Answer: NEUTRAL.", "unknown", False, False),
]
# fmt: on


@pytest.mark.parametrize(
    "name, output, label, official, strict",
    PARSER_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(PARSER_CASES)],
)
def test_parsers(name, output, label, official, strict):
    task = get_task(name)
    assert task.score(output, label) is official
    assert task.score_strict(output, label) is strict


def _tagged(name, seed=3, scale=0.02):
    raw = get_task(name).synthetic(seed=seed, scale=scale)
    return DatasetDict(
        {s: d.add_column("_origin", [f"{s}:{i}" for i in range(len(d))]) for s, d in raw.items()}
    )


def _carve(ds, p, shuffle=True):
    return (ds.shuffle(seed=42) if shuffle else ds).train_test_split(test_size=p, seed=42)


def _origins(name, raw):
    splits = get_task(name).make_splits(raw)
    return [splits[s]["_origin"] for s in ("train", "validation", "test")]


def test_carving_is_the_official_one():
    asdiv, mnli = _tagged("ASDiv", scale=0.05), _tagged("MNLI")
    first = _carve(asdiv["test"], 0.2)
    halves = _carve(first["test"], 0.5, shuffle=False)  # ASDiv: no second shuffle
    parts = [first["train"], halves["train"], halves["test"]]
    assert _origins("ASDiv", asdiv) == [p["_origin"] for p in parts]
    assert halves["train"]["_origin"] != _carve(first["test"], 0.5)["train"]["_origin"]
    first = _carve(mnli["validation"], 0.2)
    second = _carve(first["test"], 0.5)  # MNLI: shuffled again
    parts = [first["train"], second["train"], second["test"]]
    assert _origins("MNLI", mnli) == [p["_origin"] for p in parts]
    svamp, mawps = _tagged("SVAMP"), _tagged("MAWPS")
    carved = _carve(svamp["test"], 0.2)  # SVAMP: inverted, as GSM8K
    splits = get_task("SVAMP").make_splits(svamp)
    assert splits["train"]["_origin"] == svamp["train"]["_origin"]
    assert splits["validation"]["_origin"] == carved["test"]["_origin"]
    assert splits["test"]["_origin"] == carved["train"]["_origin"]
    carved = _carve(mawps["train"], 0.1)
    splits = get_task("MAWPS").make_splits(mawps)
    assert splits["train"]["_origin"] == carved["train"]["_origin"]
    assert splits["validation"]["_origin"] == carved["test"]["_origin"]
    assert splits["test"]["_origin"] == mawps["test"]["_origin"]


def test_too_few_rows_to_carve_is_a_data_error():
    rows = [ROWS["MNLI"][0]] * 4  # 4 rows: the second carve gets one row to halve
    with pytest.raises(DataError, match=r"MNLI: cannot carve 'validation' .* \(4 rows\)"):
        get_task("MNLI").make_splits(DatasetDict(validation=Dataset.from_list(rows)))


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("MNLI", {"label": -1}, r"field 'label' must be 0 \(entailment\), 1 \(neutral\) or 2"),
        ("MNLI", {"label": "2"}, "field 'label' must be an integer"),
        ("MAWPS", {"answer": "x = 1000 + 234 #### 1,234"}, "not a number: '1,234'"),
        ("SVAMP", {"Answer": "3"}, "field 'Answer' must be a finite number, got str"),
        ("ASDiv", {"result_float": None}, "field 'result_float' must be a finite number"),
        ("ASDiv", {"chain": 7}, "field 'chain' must be a string"),
    ],
)
def test_row_checks(tmp_path, name, change, message):
    task = get_task(name)
    for split in task.source_splits:
        _jsonl(tmp_path / f"{split}.jsonl", [dict(ROWS[name][0], **change)] * 12)
    with pytest.raises(
        DataError, match=f"{name}: split '{task.source_splits[0]}' row 0: .*{message}"
    ):
        task.load(data_dir=tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_local_files_and_generated_data(name, tmp_path):
    """Generated rows: valid, deterministic by seed, every gold completion strictly right
    (officially too, but SVAMP's answers of 1000 or more); from local JSON Lines files the
    same splits as from the rows in memory."""
    task = get_task(name)
    a, b, c = (task.synthetic(seed=s, scale=0.05) for s in (1, 1, 2))
    task.validate(a)
    assert set(a) == set(task.source_splits)
    assert all(content_hash(a[s]) == content_hash(b[s]) for s in a)
    assert any(content_hash(a[s]) != content_hash(c[s]) for s in a)
    rows = [r for split in task.make_splits(a).values() for r in split]
    gold = [(task.completion(r), task.label(r)) for r in rows]
    assert all(task.score_strict(out, lab) for out, lab in gold)
    assert [task.score(out, lab) for out, lab in gold] == [
        name != "SVAMP" or lab < 1000 for _, lab in gold
    ]
    assert {format_of(task, "", out, lab) for out, lab in gold} == {1.0}
    for split, ds in a.items():
        ds.to_json(str(tmp_path / f"{split}.jsonl"), lines=True)
    loaded, expected = task.load(data_dir=tmp_path), task.make_splits(a)
    for split in ("train", "validation", "test"):
        assert [task.prompt(r) for r in loaded[split]] == [task.prompt(r) for r in expected[split]]
        assert [task.label(r) for r in loaded[split]] == [task.label(r) for r in expected[split]]


@pytest.mark.parametrize("name", NAMES)
def test_offline_hub_says_how_to_provide_files(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task = get_task(name)
    with pytest.raises(DataError) as e:
        task.load()
    msg = str(e.value)
    assert task.hub_id in msg and f"{task.source_splits[0]}.jsonl" in msg and "--synthetic" in msg


@pytest.mark.parametrize("name", NAMES)
def test_tokenized_as_the_six_plain_and_through_the_chat_template(name, tokenizer):
    """Both paths at the task's max length (MNLI's chat one is 100 too); chat: the user turn
    masked, the completion supervised."""
    from steering.data import chat_text, encode_example, tokenize_split

    task = get_task(name)
    row, prompt, completion, _ = ROWS[name]
    ds = Dataset.from_list([row])
    for chat in (False, True):
        features = tokenize_split(task, ds, tokenizer, chat=chat)
        assert features[0] == encode_example(
            tokenizer, prompt, completion, task.max_length_for(chat), chat=chat
        )
    full = encode_example(tokenizer, prompt, completion, 4096, chat=True)
    kept = [t for t in full["labels"] if t != -100]
    assert tokenizer.decode(full["input_ids"]) == chat_text(tokenizer, prompt, completion)
    assert completion in tokenizer.decode(kept)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ws = tmp_path_factory.mktemp("extra")
    save_tiny_model(ws / "tiny", "llama", hidden_size=32, num_layers=2)
    return ws


@pytest.mark.parametrize("name", NAMES)
def test_train_then_evaluate_through_the_scripts(name, tiny, monkeypatch, capsys):
    """prepare_data.py --synthetic, train.py and inference.py take the name: a few steps on a
    tiny model, then the saved checkpoint evaluated on two test rows with the task's budget.
    (The tiny byte-level tokenizer spends ~160 tokens on an MNLI prompt, past its max length
    of 100, where no row would keep a completion token: MNLI trains at 256 here.)"""
    if name == "MNLI":
        monkeypatch.setattr(get_task("MNLI"), "max_length", 256)
    run = (monkeypatch, capsys, tiny)
    data, ckpt, out = tiny / f"data-{name}", tiny / f"ckpt-{name}", tiny / f"eval-{name}"
    args = ["--dataset-name", name, "--synthetic", "--scale", "0.01", "--out", data]
    code, err, said = run_script("prepare_data.py", args, *run)
    assert code == 0, err[-2000:]
    assert f"{name} (protocol v1, synthetic)" in said
    common = ["--model-name", tiny / "tiny", "--dataset-name", name, "--data-dir", data]
    args = [*common, "--max-train-samples", "8", "--epochs", "1", "--output-dir", ckpt]
    code, err, _ = run_script("train.py", args, *run)
    assert code == 0, err[-2000:]
    assert json.loads((ckpt / "training.json").read_text())["optimizer_steps"] == 1
    args = [*common, "--ckpt-path", ckpt, "--max-eval-samples", "2", "--output-dir", out]
    code, err, said = run_script("inference.py", args, *run)
    assert code == 0, err[-2000:]
    assert "test: accuracy" in said
    metrics = json.loads((out / "test.metrics.json").read_text())
    assert metrics["n"] == 2 and metrics["max_new_tokens"] == get_task(name).max_new_tokens
    task, test = get_task(name), get_task(name).load(data_dir=data)["test"]
    records = [json.loads(line) for line in (out / "test.json").read_text().splitlines()]
    assert [r["label"] for r in records] == [task.label(test[i]) for i in range(2)]
    assert [r["eval"] for r in records] == [task.score(r["output"], r["label"]) for r in records]
