"""Winogrande (allenai/winogrande, winogrande_debiased): fill the blank with one of two options."""

from __future__ import annotations

import random
import re
from typing import Any

from steering.tasks.base import Task

_ANSWER = re.compile(r"answer\s*[:\-]\s*", re.DOTALL)
_OPTION1 = re.compile(r"\boption\s*1\b|\boption1\b")
_OPTION2 = re.compile(r"\boption\s*2\b|\boption2\b")
_STRICT_ANSWER = re.compile(r"\banswer\s*[:\-]\s*", re.DOTALL)  # not inside "reanswer:"

_NAMES = "Alice Bob Carmen Dmitri Elena Farid Grace Hiro Ines Jamal Kofi Lena".split()
# (sentence with {a} {b} and a blank, whether the blank is {a})
_TEMPLATES = [
    ("{a} lent {b} an umbrella because _ had two of them.", True),
    ("{a} lent {b} an umbrella because _ had forgotten one.", False),
    ("{a} could not beat {b} at chess because _ was still a beginner.", True),
    ("{a} could not beat {b} at chess because _ was a champion.", False),
    ("{a} thanked {b} for the help, since _ was grateful.", True),
    ("{a} thanked {b} for the help, since _ had been so kind.", False),
    ("{a} asked {b} for directions because _ was lost.", True),
    ("{a} asked {b} for directions because _ knew the city well.", False),
]


class Winogrande(Task):
    name = "Winogrande"
    hub_id = "allenai/winogrande"
    hub_config = "winogrande_debiased"
    split_plan = {
        "train": ("train",),
        "validation": ("validation", 0.5, "train"),
        "test": ("validation", 0.5, "test"),
    }
    fields = {"sentence": "str", "option1": "str", "option2": "str", "answer": "str"}
    max_new_tokens = 5
    epochs = 1
    max_length = 256
    chat_max_length = 100
    synthetic_sizes = {"train": 2000, "validation": 500}
    public_rows = {"train": 9248, "validation": 633, "test": 634}
    # tokens per training row, measured on the 1,267 source validation rows (no train file)
    mean_tokens = 54
    # fmt: off
    length_quantiles = (
        48, 49, 50, 50, 51, 51, 52, 52, 52, 53, 54, 54,
        55, 55, 56, 57, 58, 59, 60, 62, 64, 66, 72,
    )
    # fmt: on

    def check_row(self, ex: dict[str, Any]) -> str | None:
        if ex["answer"] not in ("1", "2"):
            return f"field 'answer' must be '1' or '2', got {ex['answer']!r}"
        return None

    def prompt(self, ex: dict[str, Any]) -> str:
        return (
            "Please choose the correct answer to fill in the blank to complete the given "
            f"sentence: {ex['sentence']}\nOption1: {ex['option1']}\nOption2: {ex['option2']}\n"
        )

    def completion(self, ex: dict[str, Any]) -> str:
        return f"Answer: Option{ex['answer']}."

    def choices(self, ex: dict[str, Any]) -> int:
        return 2  # option1 or option2

    def label(self, ex: dict[str, Any]) -> int:
        return int(ex["answer"])

    def score(self, output: str, label: Any) -> bool:
        return self._score(output, label, _ANSWER)

    def score_strict(self, output: str, label: Any) -> bool:
        """The official parser, with a word boundary before ``answer``."""
        return self._score(output, label, _STRICT_ANSWER)

    def _score(self, output: str, label: Any, answer: re.Pattern) -> bool:
        text = output.lower()
        m = answer.search(text)
        if m is None:
            return False
        rest = text[m.end() :]
        found = [
            (x.start(), choice)
            for choice, rx in ((1, _OPTION1), (2, _OPTION2))
            if (x := rx.search(rest))
        ]
        return bool(found) and min(found)[1] == int(label)

    def synthetic_split(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        rng = random.Random(f"Winogrande-{split}-{seed}")
        rows = []
        for _ in range(n):
            a, b = rng.sample(_NAMES, 2)
            template, blank_is_a = rng.choice(_TEMPLATES)
            option1, option2 = (a, b) if rng.random() < 0.5 else (b, a)
            right = a if blank_is_a else b
            rows.append(
                {
                    "sentence": template.format(a=a, b=b),
                    "option1": option1,
                    "option2": option2,
                    "answer": "1" if option1 == right else "2",
                }
            )
        return rows
