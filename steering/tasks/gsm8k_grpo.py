"""GSM8K-GRPO: the official command line's reinforcement-learning task (PROTOCOL.md section 8).

GSM8K's data and carve, asked as a chat for every model: [system <system prompt>, user
<question>] through the tokenizer's chat template with the generation prompt. Rewarded and
scored by ``steering.tasks.rewards``: the training solution is the stripped text after
``####``; evaluation's label is that number as a float, and an output is correct when its
accuracy reward is 1.0. Not one of ``TASKS`` (the paper's tables do not have it): reached by
name through ``get_task("GSM8K-GRPO")``.
"""

from __future__ import annotations

from typing import Any

from steering.tasks.gsm8k import GSM8K, _number, _split_answer

# The official default, three sentences joined by single spaces (PROTOCOL.md section 8).
SYSTEM_PROMPT = (
    "You are a helpful AI Assistant that provides well-reasoned and detailed responses. "
    "You first think about the reasoning process as an internal monologue and then provide "
    "the user with the answer. Respond in the following format: "
    "<think>\n...\n</think>\n<answer>\n...\n</answer>"
)


class GSM8KGRPO(GSM8K):
    name = "GSM8K-GRPO"
    data_name = "GSM8K"  # whose data (prepared or source files) it reads
    max_new_tokens = 1024
    epochs = 1

    def __init__(self, system_prompt: str = SYSTEM_PROMPT) -> None:
        self.system_prompt = system_prompt

    def load(self, data_dir=None):
        return GSM8K().load(data_dir)

    def synthetic(self, seed: int = 0, scale: float = 1.0):
        return GSM8K().synthetic(seed, scale)

    def prompt(self, ex: dict[str, Any]) -> str:
        """The user turn; the chat template adds the system prompt around it."""
        return ex["question"]

    def solution(self, ex: dict[str, Any]) -> str:
        return _split_answer(ex["answer"])[1]

    def completion(self, ex: dict[str, Any]) -> str:
        """The gold answer in the format the system prompt asks for (for tests and examples;
        GRPO trains on rewards, not on this text)."""
        reasoning, final = _split_answer(ex["answer"])
        return f"<think>\n{reasoning}\n</think>\n<answer>\n\\boxed{{{final}}}\n</answer>"

    def label(self, ex: dict[str, Any]) -> float:
        return _number(self.solution(ex))

    def score(self, output: str, label: Any) -> bool:
        from steering.tasks.rewards import accuracy_reward

        return accuracy_reward([output], [str(label)])[0] == 1.0

    def score_strict(self, output: str, label: Any) -> bool:
        """The official reward has no quirk to fix: the same verdict."""
        return self.score(output, label)
