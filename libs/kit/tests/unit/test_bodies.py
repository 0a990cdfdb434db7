"""How deep a JSON text nests, followed chunk by chunk without parsing it."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow_kit.bodies import MAX_JSON_DEPTH, JsonDepth

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from('ab"\\[]{}\u00e9 ')),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=40,
)


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def fits(text: bytes, limit: int, chunk: int) -> bool:
    follower = JsonDepth(limit)
    return all(follower.feed(text[i:i + chunk]) for i in range(0, len(text), chunk))


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, chunk=st.integers(min_value=1, max_value=9))
def test_the_depth_followed_is_the_parsed_depth_however_the_text_is_cut(value, chunk):
    text = json.dumps(value).encode()
    depth = depth_of(value)
    assert fits(text, depth, chunk)
    if depth > 0:
        assert not fits(text, depth - 1, chunk)


def test_brackets_in_strings_and_escaped_quotes_do_not_count():
    text = json.dumps({"a": '"[[[[' * 50, "b": "\\", "c": [["x"]]}).encode()
    assert fits(text, 3, 1)
    assert not fits(text, 2, 1)


def test_the_bound_is_32_levels():
    assert fits(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, MAX_JSON_DEPTH, 1024)
    assert not fits(b"[" * (MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH, 1024)
