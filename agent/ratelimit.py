"""A limit on repeated warnings: at most one per key per interval, counting the rest.

Used for what a peer or a client can make us say again and again (rejected
claims, refused API connections): the first is a WARNING, the repeats within
the interval go to DEBUG and are counted, and the next WARNING says how many
there were. Counters elsewhere (`leaderd status --json`) count every one.
"""

import time

# Seconds between two warnings for the same key.
WARN_INTERVAL_S = 60.0

# Keys remembered at most (a flood of distinct names cannot grow it without bound).
MAX_KEYS = 1024


class WarningLimiter:
    """At most one warning per key per `interval_s`; `allow(key)` says whether, and how many were held back."""

    def __init__(self, interval_s=WARN_INTERVAL_S, clock=time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self._keys = {}  # key -> [time of the last warning, repeats held back since]

    def allow(self, key):
        """(True, held back since the last warning) if a warning for key may be logged now, else (False, 0)."""
        now = self.clock()
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < self.interval_s:
            entry[1] += 1
            return False, 0
        held = entry[1] if entry is not None else 0
        if entry is None and len(self._keys) >= MAX_KEYS:
            self._forget(now)
        self._keys[key] = [now, 0]
        return True, held

    def _forget(self, now):
        for key in [k for k, e in self._keys.items() if now - e[0] >= self.interval_s]:
            del self._keys[key]
        if len(self._keys) >= MAX_KEYS:
            self._keys.clear()
