"""Unit tests of agent.core.profile; run under CPython (pytest) and MicroPython.

Plain functions and plain asserts only: see tests/mp_runner.py.
"""

from agent.core import profile


def _raises_value_error(call, *words):
    """Call call(); assert it raises ValueError whose message has every word."""
    try:
        call()
    except ValueError as exc:
        message = str(exc)
        for word in words:
            assert word in message, "%r not in %r" % (word, message)
        return
    raise AssertionError("no ValueError raised")


def test_every_named_profile_is_complete():
    for name in ("lan", "wan", "local"):
        built = profile.make(name)
        assert built.name == name
        values = built.as_dict()
        for field in profile.FIELDS:
            value = values[field]
            assert isinstance(value, int) and value > 0, (name, field, value)
        assert built.probe_timeout_ms < built.probe_interval_ms


def test_default_is_lan():
    assert profile.make() == profile.lan()
    assert profile.make().name == "lan"


def test_profiles_differ_where_documented():
    lan = profile.lan()
    wan = profile.wan()
    local = profile.local()
    assert wan.probe_interval_ms > lan.probe_interval_ms > local.probe_interval_ms
    assert wan.probe_timeout_ms > lan.probe_timeout_ms > local.probe_timeout_ms
    # Fields that no override touches are shared with lan.
    assert wan.mtu_bytes == lan.mtu_bytes == local.mtu_bytes
    assert wan.indirect_checks == lan.indirect_checks


def test_override_replaces_only_that_field():
    base = profile.make("wan")
    changed = profile.make("wan", probe_interval_ms=4000, gossip_nodes=5)
    assert changed.name == "wan"
    assert changed.probe_interval_ms == 4000
    assert changed.gossip_nodes == 5
    for field in profile.FIELDS:
        if field not in ("probe_interval_ms", "gossip_nodes"):
            assert getattr(changed, field) == getattr(base, field), field
    # The original is untouched.
    assert base.probe_interval_ms == profile.wan().probe_interval_ms


def test_replace_keeps_equality_semantics():
    lan = profile.lan()
    assert lan.replace() == lan
    assert lan.replace(gossip_nodes=4) != lan
    assert lan != "lan"


def test_unknown_profile_names_allowed_values():
    _raises_value_error(lambda: profile.make("fast"), "fast", "lan", "wan", "local")


def test_unknown_field_is_named():
    _raises_value_error(lambda: profile.make("lan", probe_intervall_ms=100), "probe_intervall_ms")


def test_bad_values_name_the_field():
    cases = (
        ("probe_interval_ms", 0),
        ("probe_interval_ms", -5),
        ("gossip_nodes", "3"),
        ("retransmit_mult", 1.5),
        ("indirect_checks", True),
    )
    for field, value in cases:
        _raises_value_error(lambda: profile.make("lan", **{field: value}), field)


def test_probe_timeout_must_be_below_interval():
    _raises_value_error(lambda: profile.make("lan", probe_timeout_ms=500), "probe_timeout_ms")
    _raises_value_error(lambda: profile.make("lan", probe_interval_ms=200), "probe_timeout_ms")


def test_mtu_range():
    _raises_value_error(lambda: profile.make("lan", mtu_bytes=511), "mtu_bytes")
    _raises_value_error(lambda: profile.make("lan", mtu_bytes=65001), "mtu_bytes")
    assert profile.make("lan", mtu_bytes=512).mtu_bytes == 512
    assert profile.make("lan", mtu_bytes=65000).mtu_bytes == 65000


def test_as_dict_has_name_and_every_field():
    values = profile.local().as_dict()
    assert values["name"] == "local"
    assert len(values) == len(profile.FIELDS) + 1
