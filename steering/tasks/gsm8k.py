"""GSM8K (openai/gsm8k, main): grade-school math word problems with worked answers.

Splits are inverted on purpose (PROTOCOL.md): carve(test, 0.2) gives validation = its *test*
part (20 %) and test = its *train* part (80 %).

Parser quirk kept for comparability (``score``): the official number pattern tries the
comma-grouped form first, so a number of four or more digits written without commas is read
piecewise ("1234" -> "123", "4"); 8.9 % of the real test answers are such numbers, scored
wrong even for the gold completion. ``score_strict`` reads "1234" and "1,234" as 1234, and
only ASCII digits (the official pattern and ``float()`` also take other scripts' digits).
SVAMP and MAWPS use the same two parsers (``score_number``, ``score_number_strict``).
"""

from __future__ import annotations

import random
import re
from typing import Any

from steering.tasks.base import Task

NUMBER = re.compile(r"[-+]?\d{1,3}(?:,\d{3})*(?:\.\d+)?|[-+]?\d+(?:\.\d+)?")
_ANSWER_LINE = re.compile(r"(?i)answer\s*:\s*(.+)")
# Comma groups only where there is at least one; else a plain run of digits.
STRICT_NUMBER = re.compile(r"[-+]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_STRICT_ANSWER_LINE = re.compile(r"(?i)\banswer\s*:\s*(.+)")

_PEOPLE = "Natalia Weng Betty Julie James Mark Albert Ken Alexis Tina".split()
_ITEMS = "apples pencils stickers marbles cookies books stamps shells".split()


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _split_answer(answer: str) -> tuple[str, str]:
    reasoning, _, final = answer.partition("####")
    return reasoning.strip(), final.strip()


def score_number(output: str, label: Any) -> bool:
    """The official number parser (GSM8K's, and SVAMP's and MAWPS's, which copy it): the first
    number of the last ``answer:`` line, else the last number anywhere; within 1e-4."""
    answers = _ANSWER_LINE.findall(output)
    numbers = NUMBER.findall(answers[-1]) if answers else []
    if numbers:
        pred = numbers[0]
    else:
        numbers = NUMBER.findall(output)
        if not numbers:
            return False
        pred = numbers[-1]
    return abs(_number(pred) - float(label)) < 1e-4


def score_number_strict(output: str, label: Any) -> bool:
    """The official rule (the last answer line's first number, else the last number) over
    numbers read whole: "1234" is 1234, as is "1,234"; ASCII digits only."""
    answers = _STRICT_ANSWER_LINE.findall(output)
    numbers = STRICT_NUMBER.findall(answers[-1]) if answers else []
    if not numbers:
        numbers = STRICT_NUMBER.findall(output)[-1:]
    return bool(numbers) and abs(_number(numbers[0]) - float(label)) < 1e-4


class GSM8K(Task):
    name = "GSM8K"
    hub_id = "openai/gsm8k"
    hub_config = "main"
    split_plan = {
        "train": ("train",),
        "validation": ("test", 0.2, "test"),
        "test": ("test", 0.2, "train"),
    }
    fields = {"question": "str", "answer": "str"}
    max_new_tokens = 100
    epochs = 3
    max_length = 256
    synthetic_sizes = {"train": 2000, "test": 500}
    public_rows = {"train": 7473, "validation": 264, "test": 1055}
    # tokens per training row, measured on the 7,473 train rows
    mean_tokens = 187
    # fmt: off
    length_quantiles = (
        67, 99, 111, 120, 128, 135, 143, 150, 158, 165, 174, 183,
        192, 202, 213, 225, 239, 256, 282, 320, 349, 395, 540,
    )
    # fmt: on

    def check_row(self, ex: dict[str, Any]) -> str | None:
        _, final = _split_answer(ex["answer"])
        if "####" not in ex["answer"]:
            return "field 'answer' has no '####' before the final number"
        try:
            _number(final)
        except ValueError:
            return f"field 'answer': the text after '####' is not a number: {final[:40]!r}"
        return None

    def prompt(self, ex: dict[str, Any]) -> str:
        return f"{ex['question']}\n"

    def completion(self, ex: dict[str, Any]) -> str:
        reasoning, final = _split_answer(ex["answer"])
        return f"{reasoning}\nAnswer: {final}"

    def label(self, ex: dict[str, Any]) -> float:
        return _number(_split_answer(ex["answer"])[1])

    def score(self, output: str, label: Any) -> bool:
        return score_number(output, label)

    def score_strict(self, output: str, label: Any) -> bool:
        """The official rule (the last answer line's first number, else the last number)
        over numbers read whole: "1234" is 1234, as is "1,234"."""
        return score_number_strict(output, label)

    def synthetic_split(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        rng = random.Random(f"GSM8K-{split}-{seed}")
        rows = []
        for _ in range(n):
            who, item = rng.choice(_PEOPLE), rng.choice(_ITEMS)
            kind = rng.randrange(3)
            if kind == 0:  # one in five sums lands in the thousands, written with a comma
                hi = 60 if rng.random() < 0.8 else 3000
                a, b = rng.randint(2, hi), rng.randint(2, hi)
                total = a + b
                question = (
                    f"{who} has {a} {item}. A friend gives {who} {b} more {item}. "
                    f"How many {item} does {who} have now?"
                )
                steps = f"{who} has {a} + {b} = <<{a}+{b}={total}>>{total} {item} now."
            elif kind == 1:
                a, b = rng.randint(2, 12), rng.randint(2, 12)
                total = a * b
                question = (
                    f"{who} buys {a} boxes of {item} with {b} {item} in each box. "
                    f"How many {item} is that?"
                )
                steps = f"That is {a} * {b} = <<{a}*{b}={total}>>{total} {item}."
            else:  # two steps
                price, count = rng.choice([3, 5, 12, 25, 150]), rng.randint(4, 40)
                spent, left = price * count, rng.randint(10, 90)
                budget = spent + left
                question = (
                    f"{who} had ${budget} and bought {count} {item} at ${price} each. "
                    f"How much money does {who} have left?"
                )
                steps = (
                    f"The {item} cost {count} * {price} = <<{count}*{price}={spent}>>{spent} "
                    f"dollars.\n{who} has {budget} - {spent} = <<{budget}-{spent}={left}>>{left} "
                    "dollars left."
                )
                total = left
            final = f"{total:,}" if total >= 1000 else str(total)
            rows.append({"question": question, "answer": f"{steps}\n#### {final}"})
        return rows
