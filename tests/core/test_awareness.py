"""Tests for agent.core.awareness (run under CPython pytest and MicroPython)."""

from agent.core.awareness import Awareness


def test_awareness_table():
    # memberlist awareness_test.go TestAwareness, with max multiplier 8:
    # (delta, score after, scaled 1000 ms after)
    table = [
        (0, 0, 1000),
        (-1, 0, 1000),
        (-10, 0, 1000),
        (1, 1, 2000),
        (-1, 0, 1000),
        (10, 7, 8000),
        (-1, 6, 7000),
        (-1, 5, 6000),
        (-1, 4, 5000),
        (-1, 3, 4000),
        (-1, 2, 3000),
        (-1, 1, 2000),
        (-1, 0, 1000),
        (-1, 0, 1000),
    ]
    awareness = Awareness(8)
    for delta, score, scaled in table:
        assert awareness.apply_delta(delta) == score, (delta, score)
        assert awareness.score() == score, (delta, awareness.score())
        assert awareness.scale_ms(1000) == scaled, (delta, awareness.scale_ms(1000))


def test_awareness_starts_healthy():
    awareness = Awareness(8)
    assert awareness.score() == 0
    assert awareness.scale_ms(500) == 500
    assert awareness.scale_ms(0) == 0


def test_awareness_multiplier_one_never_scales():
    awareness = Awareness(1)
    assert awareness.apply_delta(5) == 0
    assert awareness.scale_ms(200) == 200


def test_awareness_clamps_large_deltas():
    awareness = Awareness(3)
    assert awareness.apply_delta(100) == 2
    assert awareness.scale_ms(200) == 600
    assert awareness.apply_delta(-100) == 0


def test_awareness_rejects_bad_multiplier():
    for bad in (0, -1):
        try:
            Awareness(bad)
        except ValueError:
            continue
        assert False, bad


def test_awareness_repr():
    assert repr(Awareness(8)) == "Awareness(score=0, max_multiplier=8)"
