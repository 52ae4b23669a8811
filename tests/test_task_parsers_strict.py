"""The strict parsers (``task.score_strict``): the official parser with its documented quirks
fixed. On every case of the official table they agree with the official parser except on
exactly the quirk cases listed here; the fixes then have cases of their own."""

import pytest

from steering.tasks import get_task
from tests.test_task_parsers import CASES

# (task, output) of the official table -> the strict verdict, where it differs
QUIRKS = {
    ("BoolQ", "Answer: truely"): False,  # word boundary after true/false
    ("GSM8K", "Answer: 1234"): True,  # numbers read whole
    ("GSM8K", "Answer: ١٢"): False,  # ASCII digits only
    ("ARC_Challenge", "answer: c"): False,  # options in capitals only, as completions write them
    ("ARC_Challenge", "Answered: B"): True,  # no E from "ANSWERED"; the one standalone B decides
    ("ARC_Challenge", "B, B"): True,  # one distinct option, twice
    ("ARC_Challenge", "it is a cat"): False,  # the article "a" is not an option
    ("AQuA", "answer - (c)"): False,  # capitals only
    ("AQuA", "Answered"): False,  # no E from "ANSWERED"
    ("ListOps", "<answer>٧</answer>"): False,  # ASCII digits only
}


@pytest.mark.parametrize(
    "task_name, output, label, official",
    [(t, o, lab, e) for t, rows in CASES.items() for o, lab, e in rows],
    ids=[f"{t}-{i}" for t, rows in CASES.items() for i in range(len(rows))],
)
def test_strict_agrees_with_the_official_parser_but_on_its_quirks(
    task_name, output, label, official
):
    expected = QUIRKS.get((task_name, output), official)
    assert get_task(task_name).score_strict(output, label) is expected


def test_every_listed_quirk_is_a_case_of_the_official_table():
    official = {(t, o) for t, rows in CASES.items() for o, _, _ in rows}
    assert set(QUIRKS) <= official


FIXES = [
    # task, output, label, official verdict, strict verdict
    ("GSM8K", "Answer: 1,234", 1234.0, True, True),
    ("GSM8K", "$1150/week * 50 weeks = $57,500\nAnswer: 57500", 57500.0, False, True),
    ("GSM8K", "so 1000 + 80 = 1080 beetles", 1080.0, False, True),  # no answer line: last number
    ("GSM8K", "Answer: 1,2", 1.0, True, True),  # "1,2" is no comma group: the first number
    ("GSM8K", "Answer: 12,345,678", 12345678.0, True, True),
    ("GSM8K", "Answer: 70000\nThe answer: 3", 3.0, True, True),  # the last answer line, as official
    ("AQuA", "so D is the answer\nAnswer: D.", "D", False, True),
    ("AQuA", "Test answer choice B) first, it works\nAnswer: B.", "B", False, True),
    ("AQuA", "ANSWER : D", "D", True, True),
    ("AQuA", "x = 5\nAnswer is B\nAnswer: B.", "B", True, True),
    ("AQuA", "x = 4\nAnswer: Option C\nAnswer: C.", "C", True, True),  # "Option" is no O
    # what follows the model's answer line (a made-up next question) never decides
    ("AQuA", "7 km\nAnswer: B.\nQuestion: next\nAnswer: C.", "B", True, True),
    ("AQuA", "the answer is a big one, maybe C", "C", True, True),
    ("AQuA", "Answer: Either way E", "E", True, True),  # "Either" is no E; the standalone E
    ("ARC_Challenge", "Answer: Either (C) or nothing", "C", False, True),
    (
        "ARC_Challenge",
        "Answer: (B) iron.\nQuestion: Which is a gas?\nAnswer: (A) air.",
        "B",
        True,
        True,
    ),
    ("ARC_Challenge", "Answer: (2) the moon.", "2", True, True),  # digit labels
    ("ARC_Challenge", "a cat and B", "B", False, True),  # only B stands alone as written
    ("BoolQ", "Answer: Trueblood is a name; false", "False", False, True),
    ("BoolQ", "Answer: True.", "True", True, True),
    ("Winogrande", "reanswer: option2", 2, True, False),  # word boundary before "answer"
    ("ListOps", "<answer>+7</answer>", "7", True, False),
    ("ListOps", "<answer>1_0</answer>", "10", True, False),
    ("ListOps", "<answer> 07 </answer>", "7", True, True),
]


@pytest.mark.parametrize(
    "task_name, output, label, official, strict",
    FIXES,
    ids=[f"{t}-{i}" for i, (t, *_) in enumerate(FIXES)],
)
def test_strict_fixes(task_name, output, label, official, strict):
    task = get_task(task_name)
    assert task.score(output, label) is official
    assert task.score_strict(output, label) is strict
