"""Rewards for reinforcement learning (GRPO) in TRL's reward-function form: each takes the
batch's completions (strings) and the dataset's columns by keyword, and returns one float per
completion, or None where the example has no reward (TRL then leaves it out).

The official GSM8K-GRPO pair (PROTOCOL.md section 8), weighted 1.0 and 2.0:

- ``format_reward``: 1.0 when the completion holds ``"\\n</think>\\n"`` exactly once, else 0.0;
- ``accuracy_reward``: math_verify's ``verify(gold, answer)``, gold parsed from
  ``"\\boxed{" + solution + "}"`` (None when it parses to nothing), the answer from the
  completion's first boxed or anchored LaTeX expression (none without an anchor); None when
  verification raises.

math_verify is imported on first use, so the tasks load without it.
"""

from __future__ import annotations

from typing import Any

THINK_CLOSE = "\n</think>\n"


def format_reward(completions: list[str], **kwargs: Any) -> list[float]:
    """1.0 for a completion that closes its thinking exactly once, else 0.0."""
    return [1.0 if c.count(THINK_CLOSE) == 1 else 0.0 for c in completions]


def _answer_config():
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig

    normalization = NormalizationConfig(
        nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
    )
    return [
        LatexExtractionConfig(
            normalization_config=normalization,
            boxed_match_priority=0,
            try_extract_without_anchor=False,
        )
    ]


def accuracy_reward(
    completions: list[str], solution: list[str], **kwargs: Any
) -> list[float | None]:
    """1.0 where math_verify finds the completion's answer equal to ``solution``, else 0.0;
    None where the solution parses to nothing or verification fails."""
    from math_verify import LatexExtractionConfig, parse, verify

    answer_config = _answer_config()
    rewards: list[float | None] = []
    for completion, sol in zip(completions, solution, strict=True):
        gold = parse(
            "\\boxed{" + str(sol) + "}",
            extraction_mode="first_match",
            extraction_config=[LatexExtractionConfig()],
        )
        if len(gold) == 0:
            rewards.append(None)
            continue
        answer = parse(completion, extraction_mode="first_match", extraction_config=answer_config)
        try:
            rewards.append(float(verify(gold, answer)))
        except Exception:  # the official reward: a failed verification scores nothing
            rewards.append(None)
    return rewards


OFFICIAL = (format_reward, accuracy_reward)
OFFICIAL_WEIGHTS = (1.0, 2.0)
