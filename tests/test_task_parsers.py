"""Every branch of every official parser (PROTOCOL.md section 4), table-driven."""

import pytest

from steering.tasks import get_task

LONG = "lorem ipsum " * 5000

CASES = {
    "BoolQ": [
        ("Answer: True.", "True", True),
        ("answer:false", "False", True),
        ("ANSWER :  TRUE", "True", True),  # case-insensitive, spaces around the colon
        ("Answer: False. Although true in general", "True", False),  # strict match wins
        ("Well, true; Answer: false", "False", True),  # strict beats an earlier loose word
        ("It is true.", "True", True),  # loose fallback
        ("false, not true", "True", False),  # the FIRST loose word decides
        ("untrue", "False", False),  # \b: no standalone word
        ("Answer: truely", "True", True),  # strict pattern has no trailing \b
        ("Answer: yes", "True", False),
        ("", "True", False),
        ("Ответ: true", "True", True),  # unicode around the answer
        (LONG + " Answer: False", "False", True),
    ],
    "Winogrande": [
        ("Answer: Option1.", 1, True),
        ("answer - option 2", 2, True),
        ("ANSWER:OPTION2", 2, True),
        ("Option1. Answer: Option2", 2, True),  # only the text after the first 'answer:'
        ("Answer: option 1 or option2", 1, True),  # the earlier option wins
        ("Answer: option2 not option1", 1, False),
        ("Option1", 1, False),  # no 'answer' marker: wrong
        ("Answer:\n\noption\n2", 2, True),  # \s spans newlines
        ("Answer: option12", 1, False),  # \b: 'option12' is neither
        ("Answer: the first", 1, False),
        ("", 2, False),
        ("Answer: Option1. Answer: Option2.", 1, True),  # first marker
        (LONG + "Answer: Option2", 2, True),
    ],
    "GSM8K": [
        ("so 3 + 4 = 7\nAnswer: 7", 7.0, True),
        ("Answer: 1,234", 1234.0, True),  # commas removed
        ("Answer: -5", -5.0, True),
        ("Answer: +5.50", 5.5, True),
        ("Answer: 7.00001", 7.0, True),  # |pred - label| < 1e-4
        ("Answer: 7.001", 7.0, False),
        ("Answer: 1234", 1234.0, False),  # official quirk: read as 123 then 4
        ("Answer: 3 apples and 4 pears", 3.0, True),  # the FIRST number of the answer text
        ("Answer: 3\nmore text 9\nanswer: 12", 12.0, True),  # the LAST answer line
        ("Answer: none\nso 5 then 8", 8.0, True),  # answer text without number: last overall
        ("We get 5, then 8", 8.0, True),  # no answer line: last number anywhere
        ("Answer:\n42", 42.0, True),  # '.+' stops at newline; \s* crosses it first
        ("no numbers here", 1.0, False),
        ("", 0.0, False),
        ("Answer: ١٢", 12.0, True),  # \d matches Arabic-Indic digits; float() reads them
        (LONG + " Answer: 18", 18.0, True),
    ],
    "ARC_Challenge": [
        ("Answer: (B) iron.", "B", True),
        ("answer: c", "C", True),  # uppercased first
        ("ANSWER-D", "D", True),
        ("Answer 3", "3", True),  # digit labels
        ("Answer: (E)", "E", True),
        ("Answered: B", "B", False),  # official quirk: 'ANSWERE' -> E
        ("I think (B)", "B", True),  # exactly one standalone label
        ("B or C", "B", False),  # two standalone labels: wrong
        ("B, B", "B", False),  # two occurrences
        ("it is a cat", "A", True),  # uppercasing makes 'a' a standalone A
        ("Answer: F", "F", False),
        ("", "A", False),
        ("Réponse: (B)", "B", True),  # unicode; one standalone B
        (LONG.upper() + " ANSWER: A", "A", True),
    ],
    "AQuA": [
        ("so 624 km\nAnswer: B.", "B", True),
        ("answer - (c)", "C", True),
        ("Answer:E", "E", True),
        ("Answer: 5", "E", False),  # digits are not options here
        ("between A and then D", "D", True),  # the LAST standalone letter
        ("it is a cat, maybe C", "C", True),
        ("A or B", "A", False),
        ("Answered", "E", True),  # quirk: ANSWERE -> E
        ("", "A", False),
        ("Ответ: D", "D", True),
        (LONG.upper() + " ANSWER: B", "B", True),
    ],
    "ListOps": [
        ("<answer>7</answer>", "7", True),
        ("<ANSWER> 7 </Answer>", "7", True),  # case-insensitive tags, stripped inside
        ("<answer>\n3\n</answer>", "3", True),  # dot matches newline
        ("<answer>07</answer>", "7", True),  # int() comparison
        ("<answer>7</answer><answer>8</answer>", "8", False),  # the first tag pair decides
        ("<answer>7", "7", False),  # missing closing tag
        ("7", "7", False),
        ("<answer>seven</answer>", "7", False),
        ("<answer>7.0</answer>", "7", False),  # int('7.0') fails: wrong
        ("<answer></answer>", "0", False),
        ("<answer>٧</answer>", "7", True),  # int() accepts unicode digits
        ("", "1", False),
        (LONG + "<answer>2</answer>", "2", True),
    ],
}


@pytest.mark.parametrize(
    "task_name, output, label, expected",
    [(t, o, lab, e) for t, rows in CASES.items() for o, lab, e in rows],
    ids=[f"{t}-{i}" for t, rows in CASES.items() for i in range(len(rows))],
)
def test_parser(task_name, output, label, expected):
    assert get_task(task_name).score(output, label) is expected
