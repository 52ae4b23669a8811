"""What the command-line scripts share: expected errors become one line and exit code 2.

An expected error (bad flag value, missing data, a checkpoint that does not fit, a non-finite
loss, ...) prints ``error: <what and where>`` to stderr with no traceback; ``--debug`` shows it.
So does a write the file system refuses (``steering.runtime.storage``: no space, read-only, ...),
with the flag that puts the output elsewhere in its advice.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from steering.runtime.errors import DataError, ModelNotFound, NonFiniteLoss
from steering.runtime.storage import StorageError, is_io_failure

EXPECTED = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    DataError,
    ModelNotFound,
    NonFiniteLoss,
)


def run(main: Callable[[], int | None], output_flag: str | None = "--output-dir") -> int:
    """``main()``'s exit code; expected errors and refused writes as one line and 2."""
    debug = "--debug" in sys.argv
    try:
        return main() or 0
    except EXPECTED as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if debug or not (isinstance(e, StorageError) or is_io_failure(e)):
            raise
        err = StorageError.of(e, getattr(e, "filename", None) or "?")
        err.flag = err.flag or output_flag
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
