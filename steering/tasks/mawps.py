"""MAWPS (garrethlee/MAWPS): arithmetic word problems, the answer text ending in ``#### N``.

One of the official command line's datasets beyond the paper's tables (``EXTRA_TASKS``).
Splits: carve(train, 0.1) gives train = its train part (90 %) and validation = its test part
(10 %); test = the hub's test split. Prompt ``"Question: {question}\\n"``; completion
``"{reasoning} Answer: {final}"`` (one space, no newline), where reasoning is the stripped
text before the first ``####`` and final the stripped text after the last one (an answer
without ``####`` is both); label float(final), commas kept (the official loader fails on
``1,234``: such a row is refused here, naming it). 3 epochs, 20 new tokens.

Parsers: GSM8K's, which the official loader copies (``gsm8k.score_number``).
"""

from __future__ import annotations

import random
from typing import Any

from steering.tasks.base import Task
from steering.tasks.gsm8k import score_number, score_number_strict

_PEOPLE = "Sam Joan Fred Sara Mike Alyssa Tim Jessica Dan Sally".split()
_ITEMS = "balloons oranges seashells pencils peaches cards dimes books".split()


def _parts(answer: str) -> tuple[str, str]:
    """(reasoning, final): the text before the first ``####``, after the last, stripped."""
    pieces = answer.split("####")
    return pieces[0].strip(), pieces[-1].strip()


class MAWPS(Task):
    name = "MAWPS"
    hub_id = "garrethlee/MAWPS"
    split_plan = {
        "train": ("train", 0.1, "train"),
        "validation": ("train", 0.1, "test"),
        "test": ("test",),
    }
    fields = {"question": "str", "answer": "str"}
    max_new_tokens = 20
    epochs = 3
    max_length = 256
    synthetic_sizes = {"train": 1400, "test": 350}
    # the card gives 1.42k train rows (so about 1278 / 142 carved) and 355 test rows
    public_rows = {"train": 1278, "validation": 142, "test": 355}
    mean_tokens = 40

    def check_row(self, ex: dict[str, Any]) -> str | None:
        final = _parts(ex["answer"])[1]
        try:
            float(final)
        except ValueError:
            return (
                f"field 'answer': the text after its last '####' (or the whole answer) is not "
                f"a number: {final[:40]!r}"
            )
        return None

    def prompt(self, ex: dict[str, Any]) -> str:
        return f"Question: {ex['question']}\n"

    def completion(self, ex: dict[str, Any]) -> str:
        reasoning, final = _parts(ex["answer"])
        return f"{reasoning} Answer: {final}"

    def label(self, ex: dict[str, Any]) -> float:
        return float(_parts(ex["answer"])[1])

    def score(self, output: str, label: Any) -> bool:
        return score_number(output, label)

    def score_strict(self, output: str, label: Any) -> bool:
        """GSM8K's strict reading: numbers read whole, ASCII digits only."""
        return score_number_strict(output, label)

    def synthetic_split(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        """MAWPS-style one- and two-step problems; the answer's reasoning is an equation, then
        ``#### N`` (some divisions end in .5)."""
        rng = random.Random(f"MAWPS-{split}-{seed}")
        rows = []
        for _ in range(n):
            who, item = rng.choice(_PEOPLE), rng.choice(_ITEMS)
            a, b, c = rng.randint(2, 90), rng.randint(2, 40), rng.randint(2, 9)
            kind = rng.randrange(4)
            if kind == 0:
                question = f"{who} has {a} {item}. {who} finds {b} more. How many now?"
                steps, value = f"x = {a} + {b}", a + b
            elif kind == 1:
                question = f"{who} had {a + b} {item} and gave away {b}. How many are left?"
                steps, value = f"x = {a + b} - {b}", a
            elif kind == 2:
                question = f"{who} buys {c} bags of {b} {item}, then loses {c}. How many remain?"
                steps, value = f"x = {c} * {b} - {c}", c * b - c
            else:
                whole = rng.random() >= 0.4
                total = b * 4 if whole else b * 4 + 2
                question = f"{who} splits {total} {item} among 4 friends. How many each?"
                steps, value = f"x = {total} / 4", total / 4
            final = f"{value:g}" if isinstance(value, float) else str(value)
            rows.append({"question": question, "answer": f"{steps}\n#### {final}"})
        return rows
