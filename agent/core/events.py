"""Events: what the core tells its shell happened (small immutable values).

Names are past participles. Every event has ``kind`` (a snake_case string,
the "event" field of the JSON the daemon streams) and ``as_dict()``.
"""


class Event:
    """One event: ``kind``, then the fields ``fields`` names, as attributes.

    One class for every kind, made by the constructor functions below
    (MemberJoined(name=..., ...), ...): on a board each class loaded from a
    .mpy costs ~250 bytes of heap where a function costs ~120 (docs/BOARDS.md).
    """

    def __init__(self, kind, fields, values):
        self.kind = kind
        self.fields = fields
        for i in range(len(fields)):
            setattr(self, fields[i], values[i])

    def as_dict(self):
        """The event as a JSON-ready dict, with "event" set to its kind."""
        out = {"event": self.kind}
        for name in self.fields:
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = "%s:%d" % value
            out[name] = value
        return out

    def __eq__(self, other):
        return isinstance(other, Event) and self.as_dict() == other.as_dict()

    def __repr__(self):
        parts = []
        for name in self.fields:
            parts.append("%s=%r" % (name, getattr(self, name)))
        return "Event(%s: %s)" % (self.kind, ", ".join(parts))


_MEMBER_FIELDS = ("name", "address", "incarnation", "priority", "eligible")
_NEWS_FIELDS = ("name", "incarnation", "by")


def MemberJoined(name=None, address=None, incarnation=None, priority=None, eligible=None):
    """A member was seen alive for the first time (or again after death or leave)."""
    return Event("member_joined", _MEMBER_FIELDS, (name, address, incarnation, priority, eligible))


def MemberUpdated(name=None, address=None, incarnation=None, priority=None, eligible=None):
    """A live member changed its metadata (priority, eligibility, tags, address)."""
    return Event("member_updated", _MEMBER_FIELDS, (name, address, incarnation, priority, eligible))


def MemberRecovered(name=None, address=None, incarnation=None, priority=None, eligible=None):
    """A suspected member refuted the suspicion and is alive again."""
    return Event("member_recovered", _MEMBER_FIELDS, (name, address, incarnation, priority, eligible))


def MemberSuspected(name=None, incarnation=None, by=None):
    """A member failed a probe (here or elsewhere) and is now suspect."""
    return Event("member_suspected", _NEWS_FIELDS, (name, incarnation, by))


def MemberDied(name=None, incarnation=None, by=None):
    """A suspect member's suspicion timed out (or was confirmed): it is dead."""
    return Event("member_died", _NEWS_FIELDS, (name, incarnation, by))


def MemberLeft(name=None, incarnation=None):
    """A member left the cluster gracefully."""
    return Event("member_left", ("name", "incarnation"), (name, incarnation))


def SelfRefuted(incarnation=None, state=None):
    """This node learned it was suspected or declared dead and refuted it."""
    return Event("self_refuted", ("incarnation", "state"), (incarnation, state))


def DatagramDropped(reason=None, address=None):
    """A received datagram was dropped (diagnostic; also counted in stats)."""
    return Event("datagram_dropped", ("reason", "address"), (reason, address))


def LeaderChanged(old=None, new=None, term=None):
    """The leader this node follows changed (new is None while there is none)."""
    return Event("leader_changed", ("old", "new", "term"), (old, new, term))


def Elected(term=None):
    """This node claimed the leadership for `term`."""
    return Event("elected", ("term",), (term,))


def Demoted(term=None, reason=None):
    """This node stopped leading (`reason`: outranked, resigned, ineligible, transfer)."""
    return Event("demoted", ("term", "reason"), (term, reason))


def ClaimRejected(name=None, term=None, reason=None):
    """A claim or resignation was refused (`reason`: untrusted, bad_signature, ...)."""
    return Event("claim_rejected", ("name", "term", "reason"), (name, term, reason))


def DuplicateName(address=None, incarnation=None):
    """Another agent (or a forger) announces this node's name from `address`:
    two agents share one name."""
    return Event("duplicate_name", ("address", "incarnation"), (address, incarnation))


def JoinTimedOut(seeds=None, after_ms=None):
    """No seed answered within the join timeout: the node now takes part in the
    election with the members it has (alone if need be) and keeps trying `seeds`
    ("host:port" strings)."""
    return Event("join_timed_out", ("seeds", "after_ms"), (seeds, after_ms))


def InternalError(where=None, error=None):
    """A bug, not bad input: an exception escaped the handling of a datagram or a
    timer (`where`: "receive_datagram" or "handle_timer"; `error`: its type and
    message). The node counted it, dropped the rest of that work and goes on;
    the exception itself, traceback and all, is the node's `last_error`."""
    return Event("internal_error", ("where", "error"), (where, error))
