"""The shape check of a request body: unknown top-level fields and deep nesting, found
without walking every value of a large body (the depth walk stops once every bracket
of the body belongs to a container it has seen)."""

from __future__ import annotations

import random

import orjson

from nbops.serving.app import _PREDICT_KEYS, _shape_errors


def _deep(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


def _rows(n=100):
    return [{"tenure": i, "plan": "[basic]", "note": "{{[["} for i in range(n)]


def check(payload):
    return _shape_errors(payload, _PREDICT_KEYS, orjson.dumps(payload))


def test_a_flat_hundred_row_body_passes_even_with_brackets_in_its_strings():
    assert check({"records": _rows()}) == []
    assert check({"columns": {"tenure": list(range(100)), "plan": ["[x]"] * 100}}) == []


def test_a_value_nested_too_deep_in_row_57_is_named_by_its_path():
    rows = _rows()
    rows[57]["customer_id"] = _deep(20)
    assert check({"records": rows}) == [
        {
            "loc": ["body", "records", 57, "customer_id", 0, "..."],
            "msg": "nested more than 16 levels deep",
        }
    ]
    rows[57]["customer_id"] = _deep(13)  # its innermost list 15 levels down: fine
    assert check({"records": rows}) == []


def _tree(rng, depth=0):
    roll = rng.random()
    if depth > 22 or roll < 0.4:
        return rng.choice([1, "[{", None, 2.5])
    if roll < 0.7:
        return [_tree(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {str(i): _tree(rng, depth + 1) for i in range(rng.randint(0, 3))}


def test_the_depth_check_agrees_with_a_plain_recursive_walk_on_random_bodies():
    from nbops.serving.app import _deep_path

    rng = random.Random(7)
    for _ in range(3000):
        body = {"records": [{"x": _tree(rng)}]}
        expected = _deep_path(body, 16)
        found = check(body)
        assert [e["loc"][1:] for e in found if "nested" in e["msg"]] == (
            [] if expected is None else [expected[:4] + ["..."] if len(expected) > 4 else expected]
        )
