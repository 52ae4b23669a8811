"""The reliability cases' registry: every test that drives a case of docs/reliability.md marks
it here (tests/test_reliability.py, tests/test_io_faults.py), and a test keeps that page's
list equal to what is driven."""

COVERED: set[str] = set()  # every case id a test drives


def case(*ids):
    """Mark a test as driving these cases."""
    COVERED.update(ids)
    return lambda f: f


def cases(table):
    """A parametrize table whose ids are case ids."""
    COVERED.update(p.id for p in table)
    return table
