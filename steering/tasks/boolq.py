"""BoolQ (google/boolq): yes/no questions about a passage. PROTOCOL.md section 4."""

from __future__ import annotations

import random
import re
from typing import Any

from steering.tasks.base import Task

_STRICT = re.compile(r"answer\s*:\s*(true|false)")
_LOOSE = re.compile(r"\b(true|false)\b")
_STRICT_ANSWER = re.compile(r"\banswer\s*:\s*(true|false)\b")  # "Answer: truely" is no True

_THINGS = "lighthouse bridge castle library museum tower market garden harbour station".split()
_TOWNS = "Avonlea Brightwater Cedar Falls Dunmore Eastwick Fairhaven Glenrock Highmoor".split()
_COLOURS = "red blue green white black yellow grey brown".split()


class BoolQ(Task):
    name = "BoolQ"
    hub_id = "google/boolq"
    split_plan = {
        "train": ("train",),
        "validation": ("validation", 0.2, "train"),
        "test": ("validation", 0.2, "test"),
    }
    fields = {"question": "str", "answer": "bool", "passage": "str"}
    max_new_tokens = 10
    epochs = 1
    max_length = 256
    synthetic_sizes = {"train": 2000, "validation": 500}
    public_rows = {"train": 9427, "validation": 2616, "test": 654}
    # tokens per training row, measured on the 3,270 source validation rows (no train file
    # with passages)
    mean_tokens = 164
    # fmt: off
    length_quantiles = (
        49, 76, 88, 97, 106, 114, 121, 128, 135, 142, 151, 158,
        167, 176, 185, 195, 209, 230, 256, 299, 339, 411, 1311,
    )
    # fmt: on

    def prompt(self, ex: dict[str, Any]) -> str:
        return (
            "Answer the question with a true/false based on the given passage.\n"
            f"Passage: {ex['passage']}\nQuestion: {ex['question']}\n"
        )

    def completion(self, ex: dict[str, Any]) -> str:
        return f"Answer: {ex['answer']}."

    def label(self, ex: dict[str, Any]) -> str:
        return str(ex["answer"])  # "True" / "False"

    def score(self, output: str, label: Any) -> bool:
        text = output.lower()
        m = _STRICT.search(text) or _LOOSE.search(text)
        return m is not None and m.group(1) == str(label).lower()

    def score_strict(self, output: str, label: Any) -> bool:
        """The official parser, with word boundaries around ``answer: true|false``."""
        text = output.lower()
        m = _STRICT_ANSWER.search(text) or _LOOSE.search(text)
        return m is not None and m.group(1) == str(label).lower()

    def synthetic_split(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        rng = random.Random(f"BoolQ-{split}-{seed}")
        rows = []
        for _ in range(n):
            thing, town = rng.choice(_THINGS), rng.choice(_TOWNS)
            colour, year = rng.choice(_COLOURS), rng.randint(1700, 1990)
            passage = (
                f"The {thing} of {town} was built in {year}. It is painted {colour} and "
                f"is one of the best known places in the town."
            )
            if rng.random() < 0.5:
                asked = colour if rng.random() < 0.5 else rng.choice(_COLOURS)
                question, answer = f"is the {thing} of {town} painted {asked}", asked == colour
            else:
                asked = year + rng.choice([-30, -5, 0, 0, 7, 40])
                question, answer = f"was the {thing} of {town} built in {asked}", asked == year
            rows.append({"question": question, "answer": answer, "passage": passage})
        return rows
