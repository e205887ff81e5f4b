"""Events: what the core tells its shell happened (small immutable values).

Names are past participles. Every event has ``kind`` (a snake_case string,
the "event" field of the JSON the daemon streams) and ``as_dict()``.
"""


class Event:
    """Base of all events: keyword fields, equality by value, a readable repr."""

    kind = "event"
    fields = ()

    def __init__(self, **values):
        for name in self.fields:
            setattr(self, name, values.get(name))
        for name in values:
            if name not in self.fields:
                raise TypeError("%s has no field %s" % (type(self).__name__, name))

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
        return type(self) is type(other) and self.as_dict() == other.as_dict()

    def __repr__(self):
        parts = []
        for name in self.fields:
            parts.append("%s=%r" % (name, getattr(self, name)))
        return "%s(%s)" % (type(self).__name__, ", ".join(parts))


_MEMBER_FIELDS = ("name", "address", "incarnation", "priority", "eligible")


class MemberJoined(Event):
    """A member was seen alive for the first time (or again after death or leave)."""

    kind = "member_joined"
    fields = _MEMBER_FIELDS


class MemberUpdated(Event):
    """A live member changed its metadata (priority, eligibility, tags, address)."""

    kind = "member_updated"
    fields = _MEMBER_FIELDS


class MemberRecovered(Event):
    """A suspected member refuted the suspicion and is alive again."""

    kind = "member_recovered"
    fields = _MEMBER_FIELDS


class MemberSuspected(Event):
    """A member failed a probe (here or elsewhere) and is now suspect."""

    kind = "member_suspected"
    fields = ("name", "incarnation", "by")


class MemberDied(Event):
    """A suspect member's suspicion timed out (or was confirmed): it is dead."""

    kind = "member_died"
    fields = ("name", "incarnation", "by")


class MemberLeft(Event):
    """A member left the cluster gracefully."""

    kind = "member_left"
    fields = ("name", "incarnation")


class SelfRefuted(Event):
    """This node learned it was suspected or declared dead and refuted it."""

    kind = "self_refuted"
    fields = ("incarnation", "state")


class DatagramDropped(Event):
    """A received datagram was dropped (diagnostic; also counted in stats)."""

    kind = "datagram_dropped"
    fields = ("reason", "address")


class LeaderChanged(Event):
    """The leader this node follows changed (new is None while there is none)."""

    kind = "leader_changed"
    fields = ("old", "new", "term")


class Elected(Event):
    """This node claimed the leadership for `term`."""

    kind = "elected"
    fields = ("term",)


class Demoted(Event):
    """This node stopped leading (`reason`: outranked, resigned, ineligible)."""

    kind = "demoted"
    fields = ("term", "reason")


class ClaimRejected(Event):
    """A claim or resignation was refused (`reason`: untrusted, bad_signature, ...)."""

    kind = "claim_rejected"
    fields = ("name", "term", "reason")
