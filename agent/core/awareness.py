"""Lifeguard local health ("awareness"): slow down when this node itself is unwell.

A node that misses acks because it is overloaded or its network is flaky
should not accuse others. Each sign of local trouble (a probe that got no
ack, a refutation of our own suspicion) raises the score by one, each
successful probe lowers it by one; the score stays in 0 .. max_multiplier - 1
and probe intervals and timeouts are multiplied by score + 1.
(Lifeguard, "local health aware probe"; memberlist awareness.go.)
"""


class Awareness:
    """This node's local-health score, clamped to 0 .. max_multiplier - 1."""

    def __init__(self, max_multiplier):
        if max_multiplier < 1:
            raise ValueError("awareness: max_multiplier must be at least 1, got %r" % (max_multiplier,))
        self.max_multiplier = max_multiplier
        self._score = 0

    def apply_delta(self, delta):
        """Adds `delta` to the score, clamped into range; returns the new score."""
        score = self._score + delta
        if score < 0:
            score = 0
        elif score > self.max_multiplier - 1:
            score = self.max_multiplier - 1
        self._score = score
        return score

    def score(self):
        """The current score: 0 is healthy, max_multiplier - 1 is the worst."""
        return self._score

    def scale_ms(self, timeout_ms):
        """`timeout_ms` stretched by local health: timeout_ms * (score + 1)."""
        return timeout_ms * (self._score + 1)

    def __repr__(self):
        return "Awareness(score=%d, max_multiplier=%d)" % (self._score, self.max_multiplier)
