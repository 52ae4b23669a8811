"""Prompts, completions and labels equal PROTOCOL.md's strings for hand-written rows."""

import pytest

from steering.tasks import TASKS, get_task

ROWS = {
    "BoolQ": (
        {"question": "is the sky blue", "answer": False, "passage": "The sky.\nIt is grey."},
        "Answer the question with a true/false based on the given passage.\n"
        "Passage: The sky.\nIt is grey.\nQuestion: is the sky blue\n",
        "Answer: False.",
        "False",
    ),
    "Winogrande": (
        {
            "sentence": "Ann beat Bo because _ was fast.",
            "option1": "Ann",
            "option2": "Bo",
            "answer": "1",
        },
        "Please choose the correct answer to fill in the blank to complete the given sentence: "
        "Ann beat Bo because _ was fast.\nOption1: Ann\nOption2: Bo\n",
        "Answer: Option1.",
        1,
    ),
    "GSM8K": (
        {
            "question": "Tom has 2 and gets 1,000. How many?",
            "answer": "  2 + 1000 = <<2+1000=1002>>1002 \n#### 1,002 ",
        },
        "Tom has 2 and gets 1,000. How many?\n",
        "2 + 1000 = <<2+1000=1002>>1002\nAnswer: 1,002",
        1002.0,
    ),
    "ARC_Challenge": (
        {
            "id": "x",
            "question": "Which is a metal?",
            "choices": {"text": ["wood", "iron", "glass"], "label": ["1", "2", "3"]},
            "answerKey": "2",
        },
        "Answer the following multiple-choice question.\nQuestion: Which is a metal?\n"
        "(1) wood\n(2) iron\n(3) glass\n",
        "Answer: (2) iron.",
        "2",
    ),
    "AQuA": (
        {
            "question": "2+2?",
            "options": ["A)3", "B)4", "C)5", "D)6", "E)7"],
            "rationale": "\n2+2=4 \n",
            "correct": "B",
        },
        "Answer the following multiple-choice math question.\nQuestion: 2+2?\n"
        "A)3\nB)4\nC)5\nD)6\nE)7\n",
        "2+2=4\nAnswer: B.",
        "B",
    ),
    "ListOps": (
        {"Source": "( ( ( [MAX 2 ) 9 ) ] )", "Target": 9},
        "Evaluate the value of the following nested list expression.\n"
        "Return only the final numeric result inside <answer>\u2026</answer>.\n\n"
        "Expression:\n( ( ( [MAX 2 ) 9 ) ] )\n",
        "<answer>9</answer>",
        "9",
    ),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_prompt_completion_label(name):
    row, prompt, completion, label = ROWS[name]
    task = get_task(name)
    assert task.prompt(row) == prompt
    assert task.completion(row) == completion
    assert task.label(row) == label and type(task.label(row)) is type(label)
    assert task.score(completion, label)  # a gold completion parses as correct


def test_listops_prompt_uses_the_single_ellipsis_character():
    prompt = get_task("ListOps").prompt(ROWS["ListOps"][0])
    assert "<answer>\u2026</answer>" in prompt and "..." not in prompt


def test_listops_target_may_be_a_digit_string():
    task = get_task("ListOps")
    row = {"Source": "( ( ( [MAX 2 ) 9 ) ] )", "Target": "9"}
    assert task.completion(row) == "<answer>9</answer>" and task.label(row) == "9"


def test_boolq_true_completion():
    row = dict(ROWS["BoolQ"][0], answer=True)
    assert get_task("BoolQ").completion(row) == "Answer: True."


PROTOCOL = {  # (max_new_tokens, epochs, max_length, chat max_length)
    "BoolQ": (10, 1, 256, 256),
    "Winogrande": (5, 1, 256, 100),
    "ListOps": (10, 1, 512, 256),
    "GSM8K": (100, 3, 256, 256),
    "ARC_Challenge": (100, 1, 256, 256),
    "AQuA": (256, 1, 512, 512),
}


@pytest.mark.parametrize("name", list(PROTOCOL))
def test_generation_and_training_settings(name):
    task = get_task(name)
    assert (
        task.max_new_tokens,
        task.epochs,
        task.max_length_for(False),
        task.max_length_for(True),
    ) == PROTOCOL[name]
    assert task.max_length == PROTOCOL[name][2]
    assert isinstance(task.protocol_version, int) and task.protocol_version >= 1


def test_sources_are_the_official_hub_ids():
    assert {n: (t.hub_id, t.hub_config) for n, t in TASKS.items()} == {
        "BoolQ": ("google/boolq", None),
        "Winogrande": ("allenai/winogrande", "winogrande_debiased"),
        "ListOps": ("fengyang0317/listops-64", None),
        "GSM8K": ("openai/gsm8k", "main"),
        "ARC_Challenge": ("allenai/ai2_arc", "ARC-Challenge"),
        "AQuA": ("deepmind/aqua_rat", "raw"),
    }


def test_registry_names_and_alias():
    assert list(TASKS) == ["BoolQ", "Winogrande", "ListOps", "GSM8K", "ARC_Challenge", "AQuA"]
    assert get_task("ARC") is get_task("ARC_Challenge")
    with pytest.raises(
        ValueError, match=r"unknown dataset 'SQuAD'; valid names: \['BoolQ'.*'ARC', 'GSM8K-GRPO'\]"
    ):
        get_task("SQuAD")
