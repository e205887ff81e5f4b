"""Unit tests of duration parsing and formatting (agent/durations.py)."""

import pytest

from agent.durations import format_duration, parse_duration


@pytest.mark.parametrize("text, ms", [
    ("250ms", 250),
    ("2s", 2000),
    ("10m", 600000),
    ("1h", 3600000),
    ("1.5s", 1500),
    (".5s", 500),
    ("0.25m", 15000),
    ("1m30s", 90000),
    ("1h30m", 5400000),
    ("2s500ms", 2500),
    ("5", 5000),
    ("0.5", 500),
    ("0", 0),
    (" 3s ", 3000),
    (5, 5000),
    (0.25, 250),
    (0, 0),
])
def test_parses(text, ms):
    assert parse_duration(text) == ms
    assert isinstance(parse_duration(text), int)


@pytest.mark.parametrize("text, message", [
    ("", "expected a number with a unit"),
    ("abc", "expected a number with a unit"),
    ("2x", "expected a number with a unit"),
    ("s", "expected a number with a unit"),
    ("ms5", "expected a number with a unit"),
    ("2 s", "expected a number with a unit"),
    ("2s3", "expected a number with a unit"),
    ("1e3", "expected a number with a unit"),
    ("2S", "expected a number with a unit"),
    ("-2s", "negative"),
    (-1, "negative"),
    ("1.5ms", "finer than a millisecond"),
    (0.0001, "finer than a millisecond"),
    (True, "expected a number"),
    (None, "expected a number"),
    (float("nan"), "finite"),
    (float("inf"), "finite"),
])
def test_rejects_with_a_clear_message(text, message):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("ms, text", [
    (0, "0ms"),
    (250, "250ms"),
    (1000, "1s"),
    (1500, "1.5s"),
    (60000, "1m"),
    (90000, "1m30s"),
    (5400000, "1h30m"),
    (3600250, "1h250ms"),
])
def test_formats(ms, text):
    assert format_duration(ms) == text
    assert parse_duration(text) == ms
