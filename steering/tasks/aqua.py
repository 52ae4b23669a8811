"""AQuA (deepmind/aqua_rat, raw): algebra word problems, five options, with a rationale."""

from __future__ import annotations

import random
import re
from typing import Any

from steering.tasks.answers import standalone_options, stated_answer
from steering.tasks.base import Task

_STRICT = re.compile(r"ANSWER\s*[:\-]?\s*\(?([A-E])\)?")
_STANDALONE = re.compile(r"\b([A-E])\b")
_LETTERS = "ABCDE"


class AQuA(Task):
    name = "AQuA"
    hub_id = "deepmind/aqua_rat"
    hub_config = "raw"
    split_plan = {"train": ("train",), "validation": ("validation",), "test": ("test",)}
    fields = {"question": "str", "options": "list[str]", "rationale": "str", "correct": "str"}
    max_new_tokens = 256
    epochs = 1
    max_length = 512
    synthetic_sizes = {"train": 2000, "validation": 250, "test": 250}
    public_rows = {"train": 97467, "validation": 254, "test": 254}
    # tokens per training row, measured on the 508 validation and test rows (no train file)
    mean_tokens = 183
    # fmt: off
    length_quantiles = (
        67, 111, 123, 131, 137, 143, 148, 152, 159, 165, 172, 178,
        185, 193, 198, 204, 213, 226, 257, 297, 359, 404, 506,
    )
    # fmt: on

    def check_row(self, ex: dict[str, Any]) -> str | None:
        if ex["correct"] not in _LETTERS:
            return f"field 'correct' must be one of A-E, got {ex['correct']!r}"
        return None

    def prompt(self, ex: dict[str, Any]) -> str:
        options = "\n".join(ex["options"])
        return (
            "Answer the following multiple-choice math question.\n"
            f"Question: {ex['question']}\n{options}\n"
        )

    def completion(self, ex: dict[str, Any]) -> str:
        return f"{ex['rationale'].strip()}\nAnswer: {ex['correct']}."

    def choices(self, ex: dict[str, Any]) -> int:
        return len(ex["options"])

    def label(self, ex: dict[str, Any]) -> str:
        return ex["correct"]

    def score(self, output: str, label: Any) -> bool:
        text = output.upper()
        m = _STRICT.search(text)
        if m is not None:
            return m.group(1) == str(label)
        standalone = _STANDALONE.findall(text)
        return bool(standalone) and standalone[-1] == str(label)

    def score_strict(self, output: str, label: Any) -> bool:
        """Answer lines with a separator first, so the rationale's "D is the answer" or
        "answer choice B)" never decides (steering/tasks/answers.py); else the last option
        standing alone in the text as written."""
        stated = stated_answer(output, "A-E")
        if stated is not None:
            return stated == str(label)
        standalone = standalone_options(output, "A-E")
        return bool(standalone) and standalone[-1] == str(label)

    def synthetic_split(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        rng = random.Random(f"AQuA-{split}-{seed}")
        rows = []
        for _ in range(n):
            speed, hours = rng.randint(20, 90), rng.randint(2, 9)
            distance = speed * hours
            wrong = rng.sample(
                [d for d in range(distance - 60, distance + 61, 10) if d != distance], 4
            )
            values = [distance, *wrong]
            rng.shuffle(values)
            correct = _LETTERS[values.index(distance)]
            rows.append(
                {
                    "question": f"A train runs at {speed} km/h for {hours} hours. "
                    "How far does it travel?",
                    "options": [
                        f"{letter}){v} km" for letter, v in zip(_LETTERS, values, strict=True)
                    ],
                    "rationale": f"Distance = speed * time = {speed} * {hours} = {distance} km.",
                    "correct": correct,
                }
            )
        return rows
