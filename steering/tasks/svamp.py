"""SVAMP (ChilleD/SVAMP): one-step arithmetic word problems, each with its equation.

One of the official command line's datasets beyond the paper's tables (``EXTRA_TASKS``).
Splits as GSM8K's, inverted on purpose: train = train; carve(test, 0.2) gives validation =
its *test* part (20 %), test = its *train* part (80 %). Prompt ``"{Body}\\n{Question}\\n"``;
completion ``"{Equation} Answer: {Answer}"`` with ``Answer`` written as Python writes the
value the data holds (the hub's column is a float: ``Answer: 8.0``); label float(Answer).

Parsers: GSM8K's, which the official loader copies (``gsm8k.score_number``). Its quirk
applies here to every answer of 1000 or more, since the float is written without commas:
``Answer: 1200.0`` reads 120 under the official parser, 1200 under the strict one.
"""

from __future__ import annotations

import random
from typing import Any

from steering.tasks.base import Task
from steering.tasks.gsm8k import score_number, score_number_strict

_PEOPLE = "Jack Mary Paul Rosa Dan Edward Faye Haley Olivia Robin".split()
_ITEMS = "pens marbles stickers apples cookies books flowers cards shells toys".split()


class SVAMP(Task):
    name = "SVAMP"
    hub_id = "ChilleD/SVAMP"
    split_plan = {
        "train": ("train",),
        "validation": ("test", 0.2, "test"),
        "test": ("test", 0.2, "train"),
    }
    fields = {"Body": "str", "Question": "str", "Equation": "str", "Answer": "number"}
    max_new_tokens = 100  # the official default: SVAMP is not in its table
    epochs = 1  # the official default
    max_length = 256
    synthetic_sizes = {"train": 700, "test": 300}
    public_rows = {"train": 700, "validation": 60, "test": 240}
    mean_tokens = 60

    def prompt(self, ex: dict[str, Any]) -> str:
        return f"{ex['Body']}\n{ex['Question']}\n"

    def completion(self, ex: dict[str, Any]) -> str:
        return f"{ex['Equation']} Answer: {ex['Answer']}"

    def label(self, ex: dict[str, Any]) -> float:
        return float(ex["Answer"])

    def score(self, output: str, label: Any) -> bool:
        return score_number(output, label)

    def score_strict(self, output: str, label: Any) -> bool:
        """GSM8K's strict reading: numbers read whole, ASCII digits only."""
        return score_number_strict(output, label)

    def synthetic_split(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        """SVAMP-style rows in the hub schema: the four problem types, a float answer (about
        one in ten of 1000 or more; some divisions end in .5)."""
        rng = random.Random(f"SVAMP-{split}-{seed}")
        rows = []
        for i in range(n):
            who, item = rng.choice(_PEOPLE), rng.choice(_ITEMS)
            kind = rng.choice(["Addition", "Subtraction", "Multiplication", "Common-Division"])
            if rng.random() < 0.1:  # thousands: the official parser's quirk
                kind, a, b = "Multiplication", rng.randint(40, 99), rng.randint(25, 60)
            else:
                a, b = rng.randint(2, 60), rng.randint(2, 12)
            if kind == "Addition":
                body = f"{who} had {a} {item}. A friend gave {who} {b} more {item}."
                question, op, answer = f"How many {item} does {who} have now?", "+", a + b
            elif kind == "Subtraction":
                a += b
                body = f"{who} had {a} {item}. {who} gave {b} {item} away."
                question, op, answer = f"How many {item} does {who} have left?", "-", a - b
            elif kind == "Multiplication":
                body = f"{who} has {a} boxes. Each box holds {b} {item}."
                question, op, answer = f"How many {item} does {who} have?", "*", a * b
            else:
                b = 2 if rng.random() < 0.125 else b
                a = a * b + (1 if b == 2 else 0)  # a half now and then
                body = f"{who} shares {a} {item} equally among {b} friends."
                question, op, answer = f"How many {item} does each friend get?", "/", a / b
            rows.append(
                {
                    "ID": f"synthetic-{split}-{seed}-{i}",
                    "Body": body,
                    "Question": question,
                    "Equation": f"( {float(a)} {op} {float(b)} )",
                    "Answer": float(answer),
                    "Type": kind,
                    "question_concat": f"{body} {question}",
                }
            )
        return rows
