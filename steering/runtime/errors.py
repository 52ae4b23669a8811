"""The package's expected errors: each one the scripts print as one ``error:`` line, exit 2.

They live here, in a module that imports nothing, so that ``steering.runtime.cli`` can name them
without importing torch, transformers or datasets before an argument is read.
"""


class DataError(ValueError):
    """Bad or missing task data: the message says which dataset, split, row and field."""


class ModelNotFound(ValueError):
    """The model name is neither a local model directory nor available from the hub."""


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss, or NaN or infinite gradients."""


class MissingExtra(ImportError, ValueError):
    """An optional extra is not importable (a ValueError too, so the scripts report it in one
    line)."""


LM_EVAL_INSTALL = (
    "lm-evaluation-harness is not installed: it is the optional extra lm_eval; install it "
    "with pip install 'steering[lm_eval]' (make venv installs its locked pins)"
)
