"""Durations: the "250ms", "2s", "10m", "1h" strings of config files and the CLI.

A duration is a number followed by a unit (ms, s, m, h), or several such parts
written together the way Go's time.ParseDuration reads them ("1m30s"). A bare
number means seconds (DESIGN.md), so YAML's `interval: 5` is five seconds.
Everything is converted to an int of milliseconds, the core's unit of time,
exactly: "1.5ms" is refused as finer than a millisecond, everywhere.
"""

from agent.core.rules import duration_ms

__all__ = ["parse_duration", "format_duration"]

MS_PER_UNIT = {"ms": 1, "s": 1000, "m": 60 * 1000, "h": 60 * 60 * 1000}


def parse_duration(value) -> int:
    """A duration (str like "2s", or a non-negative number of seconds) as int milliseconds.

    The rule is agent.core.rules.duration_ms, the board's too. Raises
    ValueError naming the value and what is allowed.
    """
    try:
        return duration_ms(value)
    except ValueError as exc:
        raise ValueError("invalid duration %r: %s" % (value, exc)) from None


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
