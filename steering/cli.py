"""What the command-line scripts share: expected errors become one line and exit code 2.

An expected error (bad flag value, missing data, a checkpoint that does not fit, a non-finite
loss, ...) prints ``error: <what and where>`` to stderr with no traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from steering.loader import ModelNotFound
from steering.tasks import DataError
from steering.training import NonFiniteLoss

EXPECTED = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    DataError,
    ModelNotFound,
    NonFiniteLoss,
)


def run(main: Callable[[], int | None]) -> int:
    debug = "--debug" in sys.argv
    try:
        return main() or 0
    except EXPECTED as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
