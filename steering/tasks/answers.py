"""The strict parsers' shared reading of a multiple-choice answer (ARC-Challenge, AQuA).

The official parsers take the first match of ``ANSWER\\s*[:\\-]?\\s*\\(?([A-E])\\)?`` in the
uppercased output. That pattern needs no separator and no word boundary, so "ANSWERED"
reads as E and "the answer\\nAnswer: D" or "answer choice B)" read the letter of the next
word (A, C), and uppercasing turns the article "a" into a standalone A. The strict reading:

1. the first line that starts with ``Answer`` and a separator (``:`` or ``-``), then the
   option, alone (``Answer: (B) iron.``, ``ANSWER : D``); a mention inside a line never wins
   over such a line (the rationale's "... is the answer");
2. else the first ``answer`` + separator + option anywhere, on a word boundary;
3. else the task's fallback over standalone options in the text as written (not uppercased).

"answer" is matched in any case, the option only in capitals (or digits), and never as the
first letter of a word ("Answer: Either" is no E). The first answer line is taken, as the
official parser takes its first match: a trained model runs on to its token budget, and what
follows its answer line (a made-up next question, with an answer of its own) must not decide.
"""

from __future__ import annotations

import re

_AFTER = r"[ \t]*[:\-][ \t]*\(?([{options}])\)?(?![A-Za-z0-9])"


def _patterns(options: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    after = _AFTER.format(options=options)
    line = re.compile(rf"^[ \t]*(?i:answer){after}", re.MULTILINE)
    anywhere = re.compile(rf"\b(?i:answer)\s*[:\-]\s*\(?([{options}])\)?(?![A-Za-z0-9])")
    standalone = re.compile(rf"(?<![A-Za-z0-9])([{options}])(?![A-Za-z0-9])")
    return line, anywhere, standalone


PATTERNS = {options: _patterns(options) for options in ("A-E", "A-E1-5")}


def stated_answer(output: str, options: str) -> str | None:
    """The option after an ``Answer:`` line, else after ``answer:`` anywhere (steps 1-2)."""
    line, anywhere, _ = PATTERNS[options]
    m = line.search(output) or anywhere.search(output)
    return m.group(1) if m else None


def standalone_options(output: str, options: str) -> list[str]:
    """Every option standing alone in the text as written, in order (step 3's material)."""
    return PATTERNS[options][2].findall(output)
