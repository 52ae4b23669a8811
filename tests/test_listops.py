"""The ListOps generator against an independent evaluator of the LRA string form."""

import random
import statistics

import pytest

from steering.tasks import listops


def evaluate(source: str) -> int:
    """Stack evaluation of the bracket form, ignoring the binary-node parentheses."""
    stack: list = []
    for token in source.split():
        if token in ("(", ")"):
            continue
        if token == "]":
            args = []
            while not isinstance(stack[-1], str):
                args.append(stack.pop())
            op = stack.pop()
            if op == "[MIN":
                stack.append(min(args))
            elif op == "[MAX":
                stack.append(max(args))
            elif op == "[MED":
                stack.append(int(statistics.median(args)))
            elif op == "[SM":
                stack.append(sum(args) % 10)
            else:
                raise AssertionError(op)
        elif token.startswith("["):
            stack.append(token)
        else:
            assert token.isdigit() and len(token) == 1
            stack.append(int(token))
    assert len(stack) == 1
    return stack[0]


def test_generated_answers_are_correct_and_lengths_bounded():
    rng = random.Random(0)
    ops_seen = set()
    for _ in range(2000):
        source, target = listops.generate(rng, max_length=64, min_length=16)
        assert evaluate(source) == target and 0 <= target <= 9
        tokens = [t for t in source.split() if t not in ("(", ")")]
        assert 16 <= len(tokens) <= 64
        assert source.count("(") == source.count(")")
        ops_seen |= {t for t in tokens if t.startswith("[")}
    assert ops_seen == set(listops.OPERATORS)


def test_string_form_wraps_every_binary_node():
    tree = ("[MAX", [2, ("[SM", [7, 8]), 9])
    assert listops.to_string(tree) == "( ( ( ( [MAX 2 ) ( ( ( [SM 7 ) 8 ) ] ) ) 9 ) ] )"
    assert listops.value(tree) == 9 and listops.tree_length(tree) == 8


@pytest.mark.parametrize(
    "op, values, expected",
    [
        ("[MIN", [3, 1, 2], 1),
        ("[MAX", [3, 1, 2], 3),
        ("[MED", [1, 4], 2),
        ("[MED", [1, 5, 9, 2], 3),
        ("[SM", [9, 8, 7], 4),
    ],
)
def test_operators(op, values, expected):
    assert listops.apply(op, values) == expected


def test_unknown_operator():
    with pytest.raises(ValueError, match="unknown ListOps operator"):
        listops.apply("[AVG", [1])


def test_length_variants():
    rng = random.Random(1)
    for max_length in (32, 128):
        for _ in range(200):
            source, _ = listops.generate(rng, max_length=max_length, min_length=max_length // 4)
            n = sum(t not in ("(", ")") for t in source.split())
            assert max_length // 4 <= n <= max_length
