"""ASDiv (MU-NLPC/Calc-asdiv_a): arithmetic word problems whose solution is a calculator trace.

One of the official command line's datasets beyond the paper's tables (``EXTRA_TASKS``).
The hub has one split, ``test``: carve(test, 0.2) gives train = its train part (80 %); its
test part is halved by ``train_test_split(test_size=0.5, seed=42)`` *without* the
``shuffle(seed=42)`` a carve makes first: validation = that split's train part, test = its
test part. One epoch, 100 new tokens, max length 256 (the official defaults).

The prompt asks for a fixed tag format; the completion is the hub's ``chain`` rewritten into
it (``normalize_trace``): every ``<gadget id="T">E</gadget>`` becomes ``<call tool="T">E'</call>``
(E without whitespace), then one ``<tool_output>`` with the *first* ``<output>`` (or the
result, when there is no output; none when both are empty) and ``<final>`` with the first
``<result>`` (else the first output, else empty); the text between tags is dropped. Label
``result_float``.

Parser quirk kept for comparability (``score``): the official parser gathers several
candidate answers (every ``<final>``, the ``<tool_output>`` values when they agree with the
finals, one per line of ``final answer:`` / ``answer:`` / ``= N`` cues from the last line up,
and the last number) and scores the output right when *any* of them equals the label. A model
that runs on past its ``<final>`` into more made-up steps, or lists several numbers on
separate ``= N`` lines, is right if one of them is. ``score_strict``: the first candidate
alone decides (the first ``<final>``, as the trained format writes it), read as an ASCII
decimal number.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

from steering.tasks.base import CARVE_SEED, Task

PROMPT = (
    "Solve the problem using this format:\n"
    '<call tool="calculator">EXPRESSION</call>\n'
    "<tool_output>RESULT</tool_output>\n"
    "<final>FINAL_ANSWER</final>\n\n"
    "Problem: "
)
_GADGET = re.compile(r'<gadget\s+id="([^"]+)">(.*?)</gadget>', re.DOTALL)
_RESULT = re.compile(r"<result>(.*?)</result>", re.DOTALL)
_OUTPUT = re.compile(r"<output>(.*?)</output>", re.DOTALL)
_CALL = re.compile(r'<call tool="[^"]+">.*?</call>')  # no DOTALL, as the official code
_SPACE = re.compile(r"\s+")

_TEMPLATE = "<final>FINAL_ANSWER</final>"  # the prompt's line: output after it is read
_FINAL = re.compile(r"<final>(.*?)</final>", re.DOTALL)
_TOOL_OUTPUT = re.compile(r"<tool_output>(.*?)</tool_output>", re.DOTALL)
_LINES = re.compile(r"[\r\n]+")
_ROLE = re.compile(r"^model\s*", re.IGNORECASE)  # a chat turn's role name left in the text
_FINAL_ANSWER = re.compile(r"(?i)final\s*answer\s*[:\-]\s*(.+)")
_FINAL_ANSWER_ALONE = re.compile(r"(?i)^final\s*answer\b")
_ANSWER = re.compile(r"(?i)\banswer\s*[:\-]\s*(.+)")
_EQUALS = re.compile(r"=\s*([-+]?\d+(?:\.\d+)?)")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_BRACKETS = re.compile(r"^\s*[\[\(]\s*(.*?)\s*[\]\)]\s*$")
_STRICT_NUMBER = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?")


def normalize_trace(chain: str) -> str:
    """The official rewrite of a Calc-X ``chain`` into the prompt's tag format."""
    text = _GADGET.sub(
        lambda m: f'<call tool="{m.group(1).strip()}">{_SPACE.sub("", m.group(2))}</call>', chain
    )
    result, output = _RESULT.search(text), _OUTPUT.search(text)
    final = (result or output).group(1).strip() if (result or output) else ""
    tool_output = output.group(1).strip() if output else final
    text = _RESULT.sub("", _OUTPUT.sub("", text))
    pieces = _CALL.findall(text)
    if tool_output != "":
        pieces.append(f"<tool_output>{tool_output}</tool_output>")
    pieces.append(f"<final>{final}</final>")
    return "".join(pieces)


def _clean(value: str) -> str:
    """Commas dropped, one layer of surrounding brackets or parentheses removed, stripped."""
    return _BRACKETS.sub(r"\1", value.strip().replace(",", "")).strip()


def _as_number(value: str) -> float | str:
    cleaned = _clean(value)
    try:
        return float(cleaned) if cleaned else ""
    except ValueError:
        return cleaned


def candidates(output: str) -> list[str]:
    """The official parser's candidate answers, in its order, each once."""
    text = output.split(_TEMPLATE)[-1].strip()
    found: list[str] = []

    def add(value: str) -> None:
        value = value.strip()
        if value and value not in found:
            found.append(value)

    finals, tools = _FINAL.findall(text), _TOOL_OUTPUT.findall(text)
    for value in finals:
        add(value)
    final_values = {v for v in map(_as_number, finals) if v != ""}
    tool_values = [v for v in map(_as_number, tools) if v != ""]
    if not (final_values and tool_values and any(v not in final_values for v in tool_values)):
        for value in tools:  # tool outputs count unless one disagrees with the finals
            add(value)
    lines = [_ROLE.sub("", line.strip()) for line in _LINES.split(text)]
    lines = [line for line in lines if line]
    for i in range(len(lines) - 1, -1, -1):  # the last line first
        line = lines[i]
        if m := _FINAL_ANSWER.search(line):
            add(m.group(1))
        elif _FINAL_ANSWER_ALONE.search(line) and i + 1 < len(lines):
            add(lines[i + 1])
        elif m := _ANSWER.search(line):
            add(m.group(1))
        elif equals := _EQUALS.findall(line):
            add(equals[-1])
    if numbers := _NUMBER.findall(text):
        add(numbers[-1])
    return found


def _equal(value: float, label: float) -> bool:
    return (
        math.isfinite(value)
        and math.isfinite(label)
        and math.isclose(value, label, rel_tol=1e-9, abs_tol=1e-9)
    )


def _matches(candidate: str, label: float) -> bool:
    """The official reading: ``float()`` of the cleaned text, else of what follows its
    first ``=``."""
    cleaned = _clean(candidate)
    if not cleaned:
        return False
    try:
        return _equal(float(cleaned), label)
    except ValueError:
        return "=" in cleaned and _matches(cleaned.split("=", 1)[1], label)


def _matches_strict(candidate: str, label: float) -> bool:
    """The same, over ASCII decimal numbers only (``float()`` also reads "1_0", "1e1", "٧")."""
    cleaned = _clean(candidate)
    if _STRICT_NUMBER.fullmatch(cleaned):
        return _equal(float(cleaned), label)
    return "=" in cleaned and _matches_strict(cleaned.split("=", 1)[1], label)


def _label(label: Any) -> float | None:
    try:
        return float(label)
    except (TypeError, ValueError):
        return None


class ASDiv(Task):
    name = "ASDiv"
    hub_id = "MU-NLPC/Calc-asdiv_a"
    split_plan = {
        "train": ("test", 0.2, "train"),
        "validation": ("test", 0.2, "test", 0.5, "train"),
        "test": ("test", 0.2, "test", 0.5, "test"),
    }
    fields = {"question": "str", "chain": "str", "result_float": "number"}
    max_new_tokens = 100  # the official default: ASDiv is not in its table
    epochs = 1  # the official default
    max_length = 256
    synthetic_sizes = {"test": 1200}
    synthetic_min_rows = 10  # two carves: each part keeps a row
    public_rows = {"train": 974, "validation": 122, "test": 122}
    mean_tokens = 100

    def cut(self, split, test_size: float, depth: int):
        """The first cut is a carve; the second skips the carve's ``shuffle(seed=42)``."""
        if depth == 0:
            return super().cut(split, test_size, depth)
        return split.train_test_split(test_size=test_size, seed=CARVE_SEED)

    def prompt(self, ex: dict[str, Any]) -> str:
        return f"{PROMPT}{ex['question'].strip()}\n"

    def completion(self, ex: dict[str, Any]) -> str:
        return normalize_trace(ex["chain"])

    def label(self, ex: dict[str, Any]) -> float:
        return float(ex["result_float"])

    def score(self, output: str, label: Any) -> bool:
        value = _label(label)
        return value is not None and any(_matches(c, value) for c in candidates(output))

    def score_strict(self, output: str, label: Any) -> bool:
        """The official candidates, of which the first alone decides, as a decimal number."""
        value, found = _label(label), candidates(output)
        return value is not None and bool(found) and _matches_strict(found[0], value)

    def synthetic_split(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        """ASDiv-style rows in the hub schema, chains in Calc-X's tags: one or two calculator
        steps, with now and then a chain of an output without a result, or of a result alone
        (a problem answered without a step)."""
        rng = random.Random(f"ASDiv-{split}-{seed}")
        rows = []
        for i in range(n):
            a, b, c = rng.randint(2, 60), rng.randint(2, 30), rng.randint(2, 9)
            shape = rng.choices(["one", "two", "no result", "result only"], [6, 2, 1, 1])[0]
            if shape == "result only":
                question = f"There are {a} cats and no dogs. How many cats are there?"
                chain, value = f"<result>{a}</result>", float(a)
            elif shape == "two":
                question = f"{c} boxes hold {b} pens each. {a} pens are added. How many pens?"
                total = c * b + a
                chain = (
                    f'<gadget id="calculator">{c} * {b}</gadget>\n<output>{c * b}</output>\n\n'
                    f'<gadget id="calculator">{c * b} + {a}</gadget>\n<output>{total}</output>'
                    f"\n\n<result>{total}</result>"
                )
                value = float(total)
            else:
                half = rng.random() < 0.2
                x = a * 2 + 1 if half else a + b
                expr, value = (f"{x} / 2", x / 2) if half else (f"{a} + {b}", float(x))
                verb = "shares equally between 2 friends" if half else f"gets {b} more"
                question = f"Ann has {a if not half else x} apples and {verb}. How many now?"
                shown = f"{value:g}"
                chain = f'<gadget id="calculator">{expr}</gadget>\n<output>{shown}</output>'
                chain += "" if shape == "no result" else f"\n\n<result>{shown}</result>"
            rows.append(
                {
                    "id": f"synthetic-{split}-{seed}-{i}",
                    "question": question,
                    "chain": chain,
                    "result": f"{value:g}",
                    "result_float": value,
                    "result_unit": "",
                    "grade": rng.randint(1, 6),
                    "source_question": question,
                }
            )
        return rows
