"""The member table and its merge rule.

Theory of operation
-------------------
Every piece of membership news is a claim "member M is in state S at
incarnation I". Only M itself ever raises its incarnation (to refute news of
its failure, or to publish new metadata). The table keeps, per member, the
news with the greatest (incarnation, rank), rank being
alive < suspect < dead < left. That order is total, so merging is taking a
maximum: whatever order updates arrive in, the table ends the same (tests
check this with hypothesis), and gossip needs no coordination.

The consequences, as a table (current state down, update across; "same" =
same incarnation, "newer" = higher, older updates are always ignored):

    current \\ update  alive         suspect        dead        left
    alive      same   ignore        SUSPECT        DEAD        LEFT
               newer  update meta   SUSPECT        DEAD        LEFT
    suspect    same   ignore        confirm        DEAD        LEFT
               newer  RECOVER       restart timer  DEAD        LEFT
    dead       same   ignore        ignore         ignore      LEFT
               newer  JOIN again    SUSPECT        DEAD        LEFT
    left       same   ignore        ignore         ignore      ignore
               newer  JOIN again    SUSPECT        DEAD        LEFT

News about a member we have never heard of is taken only when it is a full
record (alive, or a state sync entry: it carries the address); a bare
suspect / dead / left about a stranger is ignored, as in memberlist.
Updates about this node itself never reach the table: the node refutes them
(node.py). The one local transition, suspect -> dead when the suspicion
times out, is the same as receiving dead at the same incarnation.
"""

from agent.core.guard import address_allowed
from agent.core.wire import STATE_ALIVE, STATE_DEAD, STATE_LEFT, STATE_NAMES, STATE_SUSPECT

# Transition results of MemberTable.apply.
IGNORED = 0
JOINED = 1        # new member, or alive again after dead / left
UPDATED = 2       # alive -> alive at a newer incarnation (metadata may change)
RECOVERED = 3     # suspect -> alive
SUSPECTED = 4     # alive -> suspect, or suspect again at a newer incarnation
CONFIRMED = 5     # suspect -> suspect at the same incarnation (another suspecter)
DIED = 6          # -> dead
LEFT = 7          # -> left
RECORDED = 8      # a stranger first heard of as dead or left: kept, nothing to announce


def supersedes(new_incarnation, new_state, incarnation, state):
    """Whether news (new_incarnation, new_state) replaces (incarnation, state).

    States are ordered by their wire value: alive 0 < suspect 1 < dead 2 < left 3.
    """
    if new_incarnation != incarnation:
        return new_incarnation > incarnation
    return new_state > state


# MicroPython ignores __slots__, and every attribute an instance holds
# costs a board heap for good: there (_SPARSE) three attributes that are
# usually at their default live on the class and are set on a member only
# when they differ. CPython keeps __slots__ (a simulation of a thousand
# nodes holds a million members) and sets them all.
try:
    from micropython import const  # noqa: F401  (only to know the runtime)
    _SPARSE = True
except ImportError:
    _SPARSE = False


class Member:
    """One member as this node knows it (mutable inside the table only).

    tags (None when it has none), encoded (its state-sync record while it
    does not change; servers only, None otherwise) and signature (its own
    signature over its Alive statement at this incarnation, passed on in
    state syncs; b"" when unsigned): on a board each is kept only when it is
    not its default (see _SPARSE).
    """

    __slots__ = ("name", "address", "incarnation", "state", "priority", "eligible",
                 "tags", "since_ms", "encoded", "signature")

    def __init__(self, name, address, incarnation, state, priority, eligible, tags, since_ms, signature=b""):
        self.name = name
        self.address = address
        self.incarnation = incarnation
        self.state = state
        self.priority = priority
        self.eligible = eligible
        self.since_ms = since_ms
        if tags is not None or not _SPARSE:
            self.tags = tags
        if signature or not _SPARSE:
            self.signature = signature
        if not _SPARSE:
            self.encoded = None

    @property
    def state_name(self):
        """The state as a word: alive, suspect, dead or left."""
        return STATE_NAMES[self.state]

    def is_live(self):
        """Alive or suspect: still counted as a member (and as a candidate)."""
        return self.state <= STATE_SUSPECT

    def snapshot(self):
        """A copy that the shell may keep (the table's objects change)."""
        return Member(self.name, self.address, self.incarnation, self.state, self.priority,
                      self.eligible, self.tags, self.since_ms)

    def as_dict(self):
        """JSON-ready dict (the members --json shape)."""
        return {"name": self.name, "address": "%s:%d" % self.address, "state": STATE_NAMES[self.state],
                "priority": self.priority, "eligible": self.eligible,
                "incarnation": self.incarnation, "tags": self.tags or {}}

    def __repr__(self):
        return "Member(%s %s inc=%d %s:%d)" % (self.name, STATE_NAMES[self.state], self.incarnation,
                                              self.address[0], self.address[1])


if _SPARSE:
    Member.tags = None
    Member.encoded = None
    Member.signature = b""


class MemberTable:
    """All members but this node, merged by the rule in the module doc.

    Bounded: at most max_members entries (None: no cap); news of one more
    stranger is refused, and so is any record whose address guard.py's
    address_allowed rejects (a host name, say; own: this node's address is
    loopback; None: no check). Refusals are counted in stats (a dict), keys
    refused_member_cap and refused_member_address.
    """

    def __init__(self, max_members=None, own=None, stats=None):
        self.members = {}
        self.live_count = 0
        self.max_members = max_members
        self.own = own
        self.stats = stats if stats is not None else {}

    def get(self, name):
        """The member named so, or None."""
        return self.members.get(name)

    def __len__(self):
        return len(self.members)

    def apply(self, name, incarnation, state, now, address=None, priority=0, eligible=True, tags=None,
              signature=b""):
        """Merges one piece of news; returns the transition (IGNORED, JOINED, ...).

        `address` is None for bare suspect / dead / left messages; with it,
        the update is a full record that may create the member.
        """
        member = self.members.get(name)
        # An address the member has already passed is not checked again: the
        # same verdict, without the parse's garbage for every record of every
        # sync (on a board, small pieces between long-lived ones: fragmentation).
        if address is not None and self.own is not None and (member is None or address != member.address) \
                and not address_allowed(address, self.own):
            self.stats["refused_member_address"] = self.stats.get("refused_member_address", 0) + 1
            return IGNORED
        if member is None:
            if address is None:
                return IGNORED
            if self.max_members is not None and len(self.members) >= self.max_members:
                self.stats["refused_member_cap"] = self.stats.get("refused_member_cap", 0) + 1
                return IGNORED
            member = Member(name, address, incarnation, state, priority, eligible, tags, now, signature)
            self.members[name] = member
            if state <= STATE_SUSPECT:
                self.live_count += 1
                return JOINED if state == STATE_ALIVE else SUSPECTED
            return RECORDED
        old = member.state
        if incarnation == member.incarnation and state == old:
            return CONFIRMED if state == STATE_SUSPECT else IGNORED
        if not supersedes(incarnation, state, member.incarnation, old):
            return IGNORED
        newer = incarnation > member.incarnation
        member.incarnation = incarnation
        if member.encoded is not None:
            member.encoded = None
        if address is not None and newer:
            member.address = address
            member.priority = priority
            member.eligible = eligible
            if tags is not member.tags:
                member.tags = tags
            if signature != member.signature:
                member.signature = signature
        elif newer and member.signature:
            member.signature = b""  # it signed an older incarnation
        if state != old:
            member.since_ms = now
            member.state = state
            was_live = old <= STATE_SUSPECT
            is_live = state <= STATE_SUSPECT
            if was_live and not is_live:
                self.live_count -= 1
            elif is_live and not was_live:
                self.live_count += 1
        if state == STATE_ALIVE:
            if old == STATE_ALIVE:
                return UPDATED
            return RECOVERED if old == STATE_SUSPECT else JOINED
        if state == STATE_SUSPECT:
            return SUSPECTED
        return DIED if state == STATE_DEAD else LEFT

    def remove(self, name):
        """Forgets a member (reaping of long-dead members)."""
        member = self.members.pop(name, None)
        if member is not None and member.state <= STATE_SUSPECT:
            self.live_count -= 1


__all__ = ("STATE_ALIVE", "STATE_SUSPECT", "STATE_DEAD", "STATE_LEFT", "Member", "MemberTable", "supersedes")
