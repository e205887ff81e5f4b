"""Durations: the "250ms", "2s", "10m", "1h" strings of config files and the CLI.

A duration is a number followed by a unit (ms, s, m, h), or several such parts
written together the way Go's time.ParseDuration reads them ("1m30s"). A bare
number means seconds (DESIGN.md), so YAML's `interval: 5` is five seconds.
Everything is converted to an int of milliseconds, the core's unit of time.
"""

import re

__all__ = ["parse_duration", "format_duration"]

MS_PER_UNIT = {"ms": 1, "s": 1000, "m": 60 * 1000, "h": 60 * 60 * 1000}

# One "<number><unit>" part; "ms" comes before "m" so that "5ms" is not "5m" + "s".
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_BARE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)")

_EXPECTED = (
    'expected a number with a unit ms, s, m or h (e.g. "250ms", "2s", "10m", "1h30m"); '
    "a bare number means seconds"
)


def parse_duration(value) -> int:
    """A duration (str like "2s", or a non-negative number of seconds) as int milliseconds.

    Raises ValueError naming the value and what is allowed.
    """
    if isinstance(value, bool):
        raise ValueError("invalid duration %r: %s" % (value, _EXPECTED))
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("invalid duration %r: must be a finite number of seconds" % (value,))
        if value < 0:
            raise ValueError("invalid duration %r: must not be negative" % (value,))
        return _whole_ms(value * 1000, value)
    if not isinstance(value, str):
        raise ValueError("invalid duration %r: %s" % (value, _EXPECTED))
    text = value.strip()
    if text.startswith("-"):
        raise ValueError("invalid duration %r: must not be negative" % (value,))
    if _BARE.fullmatch(text):
        return _whole_ms(float(text) * 1000, value)
    total = 0.0
    position = 0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * MS_PER_UNIT[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        raise ValueError("invalid duration %r: %s" % (value, _EXPECTED))
    return _whole_ms(total, value)


def _whole_ms(milliseconds, original) -> int:
    """milliseconds (a float) as an int, refusing fractions of a millisecond."""
    rounded = round(milliseconds)
    if abs(milliseconds - rounded) > 1e-6:
        raise ValueError(
            "invalid duration %r: finer than a millisecond (the smallest unit is 1ms)" % (original,)
        )
    return int(rounded)


def format_duration(milliseconds) -> str:
    """int milliseconds as a short human string: 250ms, 2s, 1.5s, 10m, 1h30m."""
    if milliseconds < 0:
        return "-" + format_duration(-milliseconds)
    if milliseconds < 1000:
        return "%dms" % milliseconds
    if milliseconds < 60 * 1000:
        seconds = milliseconds / 1000
        return ("%.3f" % seconds).rstrip("0").rstrip(".") + "s"
    parts = []
    hours, rest = divmod(milliseconds, MS_PER_UNIT["h"])
    minutes, rest = divmod(rest, MS_PER_UNIT["m"])
    if hours:
        parts.append("%dh" % hours)
    if minutes:
        parts.append("%dm" % minutes)
    if rest:
        parts.append(format_duration(rest))
    return "".join(parts)
