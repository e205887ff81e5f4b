"""agent/daemon.py's handling of the core's events, with the node, the API and the hooks faked.

The unit test of one module (STYLE.md habit 10 a): what `_on_event` publishes
to `watch`, what it hands to the hooks, and what it logs. The real-process
tests (tests/test_daemon.py) show the same through real agents.
"""

import json
import logging
import sys

import pytest

from agent import config as config_mod
from agent.commands import _describe
from agent.core import events
from agent.daemon import Agent, _JsonFormatter


class FakeNode:
    """The facade methods the daemon's event handling reads, from plain attributes."""

    name = "node-2"
    insecure = False

    def __init__(self, leader=None):
        self.current = leader  # (name, term) or None: the node's state *now*
        self.addresses = {"node-0": ("127.0.0.1", 7000), "node-1": ("127.0.0.1", 7001)}

    def leader(self):
        return self.current

    def term(self):
        return self.current[1] if self.current else 0

    def is_leader(self):
        return self.current is not None and self.current[0] == self.name

    def member(self, name):
        address = self.addresses.get(name)
        return None if address is None else type("M", (), {"address": address})()


class FakeApi:
    def __init__(self):
        self.published = []

    def publish(self, event):
        json.dumps(event)  # must be JSON-able, as the real one requires
        self.published.append(dict(event))


class FakeHooks:
    def __init__(self):
        self.calls = []

    def submit(self, event, leader, term):
        self.calls.append((event, leader, term))

    def leader_changed(self, leader, term):
        self.calls.append(("leader_changed", leader, term))


@pytest.fixture
async def agent():
    a = Agent(config_mod.default_config(), None)
    a.node, a.api, a.hooks = FakeNode(), FakeApi(), FakeHooks()
    a._term = 0
    return a


async def test_a_leader_changed_event_carries_its_own_state_not_the_current_one(agent):
    # One pump drained both events: the old leader dropped (term 5), then
    # node-1 elected (term 6). When the first is handled, the node already
    # follows node-1 at term 6; the event must still say what it saw.
    agent.node.current = ("node-1", 6)
    agent._on_event(events.LeaderChanged(old="node-0", new=None, term=5))
    agent._on_event(events.LeaderChanged(old=None, new="node-1", term=6))
    dropped, elected = agent.api.published
    assert dropped["event"] == "leader_changed"
    assert (dropped["old"], dropped["new"], dropped["term"]) == ("node-0", None, 5), dropped
    assert dropped["leader"] is None and dropped["is_leader"] is False and dropped["address"] is None, dropped
    assert (elected["old"], elected["new"], elected["term"]) == (None, "node-1", 6), elected
    assert elected["leader"] == "node-1" and elected["address"] == "127.0.0.1:7001", elected
    assert elected["self"] == "node-2" and elected["is_leader"] is False, elected
    # Text and JSON `watch` say the same thing.
    assert _describe(dropped).split(" ", 1)[1] == "leader none (term 5)"
    assert _describe(elected).split(" ", 1)[1] == "leader node-1 (term 6)"


async def test_leader_changes_go_to_the_hooks_settling_logic_with_their_own_state(agent):
    agent.node.current = ("node-1", 6)
    agent._on_event(events.LeaderChanged(old="node-0", new=None, term=5))
    agent._on_event(events.LeaderChanged(old=None, new="node-1", term=6))
    assert agent.hooks.calls == [("leader_changed", None, 5), ("leader_changed", "node-1", 6)]


async def test_on_demoted_names_the_leader_that_outranked_this_node_and_no_later_one(agent):
    agent.node.name = "node-2"
    agent.node.current = ("node-0", 8)
    agent._on_event(events.Demoted(term=8, reason="outranked"))
    # Resigned at term 8; by the time the event is handled node-0 leads at term 9.
    agent.node.current = ("node-0", 9)
    agent._on_event(events.Demoted(term=8, reason="resigned"))
    assert agent.hooks.calls == [("on_demoted", "node-0", 8), ("on_demoted", None, 8)]


async def test_rejected_claims_are_logged_as_warnings_at_most_once_a_minute_per_claimant(agent, caplog):
    caplog.set_level(logging.DEBUG, logger="leaderd")
    for term in range(5):
        agent._on_event(events.ClaimRejected(name="mallory", term=term, reason="untrusted"))
    agent._on_event(events.ClaimRejected(name="eve", term=1, reason="bad_signature"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "mallory" in warnings[0] and "eve" in warnings[1], warnings
    # The rest are still logged, at DEBUG, and still published to watch.
    assert sum("mallory" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG) == 4
    assert len([e for e in agent.api.published if e["event"] == "claim_rejected"]) == 6


def test_json_log_lines_keep_the_traceback_as_a_field():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("leaderd", logging.ERROR, __file__, 1, "failed: %s", ("x",), sys.exc_info())
    line = json.loads(_JsonFormatter().format(record))
    assert line["msg"] == "failed: x" and line["level"] == "error"
    assert "Traceback" in line["exc"] and "RuntimeError: boom" in line["exc"], line
    plain = logging.LogRecord("leaderd", logging.INFO, __file__, 1, "fine", (), None)
    assert "exc" not in json.loads(_JsonFormatter().format(plain))
