"""Lifeguard dynamic suspicion: the timeout before a suspect member is declared dead.

Theory of operation. When this node learns that a member is suspect, it
starts a Suspicion. The timeout begins at max_ms and falls logarithmically
towards min_ms as other members independently confirm the suspicion, reaching
min_ms after `expected` confirmations (profile.suspicion_confirmations):

    timeout = max(min, floor(max - (max - min) * log(c + 1) / log(k + 1)))

with c confirmations out of k expected. A lone, possibly false, suspicion
therefore has the most time to be refuted, while a real crash seen by many
is declared quickly. The bounds grow with the cluster, since gossip needs
about log(n) rounds to reach everyone:

    min = suspicion_mult * max(1, log10(n)) * probe_interval_ms
    max = suspicion_max_timeout_mult * min

Nothing here reads a clock or arms a timer: a Suspicion is a deadline in
state (deadline_ms), and the caller compares it with `now`.
(Lifeguard, "dynamic suspicion timeout"; memberlist suspicion.go has the same
formula, tested with the table reproduced in tests/core/test_suspicion.py.)
"""

import math


def suspicion_bounds_ms(profile, n_members):
    """The (min_ms, max_ms) suspicion timeouts for a cluster of n_members."""
    scale = 1.0
    if n_members > 10:
        scale = math.log10(n_members)
    min_ms = int(round(profile.suspicion_mult * scale * profile.probe_interval_ms))
    return min_ms, profile.suspicion_max_timeout_mult * min_ms


def suspicion_timeout_ms(confirmations, expected, min_ms, max_ms):
    """The suspicion timeout in ms after `confirmations` of `expected` confirmations."""
    if expected < 1 or confirmations >= expected:
        # Exactly min at c = k, without trusting float rounding of log(k+1)/log(k+1).
        return min_ms
    if confirmations <= 0:
        return max_ms if max_ms > min_ms else min_ms
    fraction = math.log(confirmations + 1) / math.log(expected + 1)
    timeout = int(math.floor(max_ms - (max_ms - min_ms) * fraction))
    return timeout if timeout > min_ms else min_ms


def remaining_suspicion_ms(confirmations, expected, elapsed_ms, min_ms, max_ms):
    """The ms left before a suspicion `elapsed_ms` old expires; negative once past."""
    return suspicion_timeout_ms(confirmations, expected, min_ms, max_ms) - elapsed_ms


class Suspicion:
    """The state of one suspicion of one member: who started it, when, and who confirmed it."""

    def __init__(self, by, started_ms, min_ms, max_ms, expected):
        if min_ms < 0 or max_ms < min_ms:
            raise ValueError("suspicion: need 0 <= min_ms <= max_ms, got %r, %r" % (min_ms, max_ms))
        # Name of the member whose suspicion started this one; it never counts
        # as a confirmation of itself.
        self.by = by
        self.started_ms = started_ms
        self.min_ms = min_ms
        self.max_ms = max_ms
        # Confirmations after which the timeout is at its minimum.
        self.expected = expected
        # Independent confirmations counted so far (at most `expected`).
        self.confirmations = 0
        # Names that may not count (again): the first suspecter and each
        # confirmer. Looked up only, never iterated (dict order differs on
        # MicroPython).
        self._seen = {by: True}
        # The final probe the suspecting node sends once the deadline comes
        # (node.py): its seq, whether it was answered, and when its verdict
        # is due (None: not sent yet).
        self.final_seq = None
        self.final_acked = False
        self.verdict_at = None

    def confirm(self, name):
        """Counts `name` as a confirmer; True if it was new and shortened the deadline."""
        if self.confirmations >= self.expected:
            return False
        if name in self._seen:
            return False
        self._seen[name] = True
        self.confirmations += 1
        return True

    def timeout_ms(self):
        """The whole suspicion timeout in ms for the current count of confirmations."""
        return suspicion_timeout_ms(self.confirmations, self.expected, self.min_ms, self.max_ms)

    def deadline_ms(self):
        """The time (int ms, same clock as started_ms) at which the suspect is declared dead."""
        return self.started_ms + self.timeout_ms()

    def remaining_ms(self, now):
        """The ms left at `now` before the deadline; negative once past."""
        return self.deadline_ms() - now

    def __repr__(self):
        return "Suspicion(by=%r, started_ms=%r, confirmations=%r/%r, deadline_ms=%r)" % (
            self.by, self.started_ms, self.confirmations, self.expected, self.deadline_ms())
