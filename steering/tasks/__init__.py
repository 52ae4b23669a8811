"""The six tasks of the paper, by name: ``get_task("GSM8K")``: one module a task with its
prompts, splits and parsers (``base`` the shared shape, ``answers`` the shared answer
patterns, ``files`` the local data files, ``shipped`` the real data the package carries);
the official command line's other datasets (``asdiv``, ``svamp``, ``mawps``, ``mnli``), and
its GSM8K-GRPO (``gsm8k_grpo``) with its rewards (``rewards``).

May import: ``runtime`` only: the tasks are data, and know nothing of models.
"""

from steering.tasks.aqua import AQuA
from steering.tasks.arc_challenge import ARCChallenge
from steering.tasks.asdiv import ASDiv
from steering.tasks.base import Task
from steering.tasks.boolq import BoolQ
from steering.tasks.files import DataError
from steering.tasks.gsm8k import GSM8K
from steering.tasks.gsm8k_grpo import GSM8KGRPO
from steering.tasks.listops import ListOps
from steering.tasks.mawps import MAWPS
from steering.tasks.mnli import MNLI
from steering.tasks.svamp import SVAMP
from steering.tasks.winogrande import Winogrande

TASKS: dict[str, Task] = {
    "BoolQ": BoolQ(),
    "Winogrande": Winogrande(),
    "ListOps": ListOps(),
    "GSM8K": GSM8K(),
    "ARC_Challenge": ARCChallenge(),
    "AQuA": AQuA(),
}
ALIASES = {"ARC": "ARC_Challenge"}
# The official command line's other supervised datasets (its ``dataset_dict``): trained and
# evaluated like the six, but not among the paper's tables (no reference numbers), so not in
# TASKS.
EXTRA_TASKS: dict[str, Task] = {
    "ASDiv": ASDiv(),
    "SVAMP": SVAMP(),
    "MAWPS": MAWPS(),
    "MNLI": MNLI(),
}
# The official command line's reinforcement-learning task: GSM8K's data under GRPO
# (``steering/tasks/gsm8k_grpo.py``); not among the paper's tables, so not in TASKS.
RL_TASKS: dict[str, Task] = {"GSM8K-GRPO": GSM8KGRPO()}


def get_task(name: str) -> Task:
    """The task called ``name`` (``ARC`` is accepted for ``ARC_Challenge``)."""
    task = TASKS.get(ALIASES.get(name, name)) or EXTRA_TASKS.get(name) or RL_TASKS.get(name)
    if task is None:
        valid = [*TASKS, *EXTRA_TASKS, *ALIASES, *RL_TASKS]
        raise ValueError(f"unknown dataset {name!r}; valid names: {valid}")
    return task


__all__ = ["EXTRA_TASKS", "RL_TASKS", "TASKS", "DataError", "Task", "get_task"]
