"""The node: SWIM membership with Lifeguard, as one sans-I/O state machine.

In aioquic's shape: the shell feeds datagrams (`receive_datagram`) and timer
expiries (`handle_timer`), sends what `datagrams_to_send` returns, re-arms one
timer at `get_timer()` and drains `next_event()`. Every input takes `now`
(int ms, monotonic). Nothing here reads a clock, a socket or os.urandom.

Protocol summary (docs/PROTOCOL.md has the details):

- Probing: every probe interval (scaled by Lifeguard's local health) the next
  live member in a shuffled round-robin list is pinged. No ack within the
  probe timeout: `indirect_checks` others are asked to ping it (ping-req) and
  answer with an ack, or a nack when they got none. No ack by the end of the
  interval: the member is suspected. Missing nacks raise our own health
  score (we may be the slow one), a success lowers it.
- Suspicion: a suspect is declared dead when its suspicion times out; the
  timeout shrinks as independent members confirm it (suspicion.py). The
  suspect itself refutes with a higher incarnation; pings to a suspect carry
  the suspicion first (buddy system) so it learns at once.
- Dissemination: updates are piggybacked on every datagram and sent to
  `gossip_nodes` random members every gossip interval while any are pending,
  each up to retransmit_mult * ceil(log10(n + 1)) times (broadcast.py).
- Anti-entropy: full state sync (push-pull) with a random member every
  push_pull_interval (scaled up past 32 members), with the seeds on join, and
  with one dead member every dead_reprobe_interval, in turn (each of k dead
  members within k intervals, not "likely": a random pick may miss one for
  minutes), so partitions heal.
"""

from agent.core import events, wire
from agent.core.auth import Keyring
from agent.core.awareness import Awareness
from agent.core.broadcast import BroadcastQueue
from agent.core.election import Election
from agent.core.guard import Guard, address_allowed
from agent.core.membership import (
    CONFIRMED, DIED, IGNORED, LEFT, RECORDED, RECOVERED, SUSPECTED, UPDATED,
    Member, MemberTable, supersedes,
)
from agent.core.nameset import NameSet
from agent.core.rand import randbelow, shuffle
from agent.core.suspicion import Suspicion, suspicion_bounds_ms
from agent.core.wire import STATE_ALIVE, STATE_DEAD, STATE_LEFT, STATE_SUSPECT

try:
    from micropython import const
except ImportError:  # CPython: constants are plain ints
    def const(value):
        return value

_NEVER = None
_MAX_EVENTS = const(4096)
_MAX_RELAYS = const(64)
_MAX_FINAL_PROBES = const(1024)
_MAX_INCARNATION = 0xFFFFFFFF
# News about this node more than this far above its own incarnation is
# forged (only this node raises its incarnation, one step at a time, and a
# restart starts above its previous life): counted, never adopted.
_INCARNATION_WINDOW = const(1024)
# Extra state syncs, one probe interval apart, right after joining.
_BOOTSTRAP_SYNCS = const(3)


class _Probe:
    """The probe in flight: its target, seq and deadlines."""

    __slots__ = ("target", "incarnation", "seq", "indirect_at", "deadline_at", "acked",
                 "nacks_expected", "nacks")

    def __init__(self, target, incarnation, seq, indirect_at, deadline_at):
        self.target = target
        self.incarnation = incarnation
        self.seq = seq
        self.indirect_at = indirect_at
        self.deadline_at = deadline_at
        self.acked = False
        self.nacks_expected = 0
        self.nacks = 0


class Node:
    """One member of a leaderd cluster, without I/O (see the module doc)."""

    def __init__(self, name, address, profile, rng, now, cluster="default", keyring=None,
                 priority=100, eligible=True, tags=None, incarnation=0,
                 signer=None, verifier=None, trusted_keys=None, preempt=True, preempt_delay_ms=5000,
                 max_final_probes=_MAX_FINAL_PROBES,
                 claim_cache_size=None, term=0, cache_records=True, member_checks=True, join_timeout_ms=None,
                 max_members=4096):
        # The max_* and claim_cache_size bounds keep memory flat over weeks;
        # the defaults suit servers, boards pass smaller ones (micropython/leaderd.py).
        # max_members: members this node keeps, itself included.
        if not isinstance(max_members, int) or max_members < 2:
            raise ValueError("max_members must be at least 2, got %r" % (max_members,))
        if not isinstance(priority, int) or priority < 0 or priority > 255:
            raise ValueError("priority must be 0..255, got %r" % (priority,))
        self.name = name
        self.address = (address[0], address[1])
        self.profile = profile
        self.rng = rng
        self.cluster = cluster
        self.incarnation = incarnation
        self.priority = priority
        # What the operator (or the health check) says; the advertised flag
        # also needs a signing key when claims must be signed.
        self.user_eligible = bool(eligible)
        if trusted_keys is not None and (signer is None or verifier is None):
            if verifier is None:
                raise ValueError("a trust list needs a verifier")
        self.eligible = self.user_eligible and (trusted_keys is None or signer is not None)
        self.tags = tags
        wire.encode_tags(tags)  # raises ValueError on bad tags: a local error
        self.awareness = Awareness(profile.awareness_max_multiplier)
        self.broadcasts = BroadcastQueue()
        self.stats = {
            "sent_datagrams": 0, "sent_bytes": 0, "max_sent_bytes": 0,
            "received_datagrams": 0, "received_bytes": 0,
            "dropped_truncated": 0, "dropped_version": 0, "dropped_cluster": 0,
            "dropped_auth": 0, "dropped_malformed": 0, "dropped_oversized": 0,
            "probes": 0, "probe_failures": 0, "refutations": 0, "unexpected_ping": 0,
            "claims_stale": 0, "signature_checks": 0, "dropped_incarnation": 0, "internal_errors": 0,
        }
        # The codec, which also keeps the proof of address, reply budget and
        # rate limits (guard.py); it adds its refused_* and other counters to stats.
        self.codec = self.guard = Guard(cluster, name, Keyring(keyring) if keyring else None, self.address,
                                        profile, rng, self.stats, max_members)
        self.table = MemberTable(max_members - 1, self.guard.own, self.stats)
        # The exception of the last internal error (_contain), or None.
        self.last_error = None
        self._stalled_until = None
        self.left = False
        self.joined = False
        self._leaving = False
        self._out = []
        self._events = []
        self._event_head = 0
        self._seq = rng.getrandbits(30)
        self._live = NameSet()
        self._dead = NameSet()
        self._reprobe_turn = 0
        self._probe_order = []
        self._probe_pos = 0
        self._probe = None
        self._probe_at = now + randbelow(rng, profile.probe_interval_ms)
        self._gossip_at = now + profile.gossip_interval_ms
        self._push_pull_at = now + self._push_pull_interval() // 2 + randbelow(rng, self._push_pull_interval())
        self._reprobe_at = now + profile.dead_reprobe_interval_ms + randbelow(rng, profile.probe_interval_ms)
        self._relays = {}
        self._suspicions = {}
        self._suspicion_next = _NEVER
        self._seeds = []
        self._join_at = _NEVER
        self._bootstrap_syncs = 0
        self._final_probes = {}
        self._max_final_probes = max_final_probes
        self._urgent_probe = None
        self._reannounced_at = None
        self._told_dead = {}
        self._dirty = True
        # Keep each member's encoded sync record (servers: syncs at N = 1000
        # cost far less CPU); boards save its heap (~100 B a member) instead.
        self._cache_records = cache_records
        # Whether every trusted member's own signature over its metadata is
        # checked before the metadata is merged (servers), or only carried
        # (boards: most of a second a check; they follow the leader's
        # verified heartbeats and verify no member records).
        self.member_checks = member_checks
        # [statement bytes, signature] of our own Alive; signature None while
        # a deferring signer (a board) signs it.
        self._alive_signed = None
        # The election works with the member table and the live names (read
        # only), the broadcast queue and the counters, and is handed the
        # node's way out and what only the node knows as callables; the node
        # tells it its own priority, incarnation and eligibility (set_local,
        # at every change: each bumps the incarnation).
        self.election = Election(name, profile, self.codec.cluster_tag, self.table, self._live, self.broadcasts,
                                 self.stats, (self._send, self._emit, self.alive_message, self.waiting_for_seeds,
                                              self.tell_dead), now, signer, verifier, trusted_keys, preempt,
                                 preempt_delay_ms, claim_cache_size, member_checks)
        self.election.set_local(priority, incarnation, self.user_eligible)
        # The highest term this node saw in an earlier life (the shell keeps
        # it on disk), so its next claim still outranks every earlier one.
        self.election.term = term
        self._broadcast_self()
        # Lone start (join, _send_join): None waits for a seed forever.
        self._join_timeout_ms = join_timeout_ms
        self._join_deadline = _NEVER
        self._join_timed_out = False

    # --- Commands -------------------------------------------------------

    def join(self, seeds, now):
        """Starts joining through seeds (list of (host, port)); retried until one answers.

        Lone start: with a join timeout (join_timeout_ms) and no answer by
        then, the node emits JoinTimedOut and takes part in the election
        with the members it has, alone if need be, while it keeps trying
        the seeds (every join_retry_ms) until one of them is a live member:
        then the two sides have merged.
        """
        self._seeds = [(s[0], s[1]) for s in seeds if (s[0], s[1]) != self.address]
        self._join_timed_out = False
        self._join_deadline = _NEVER
        if not self._seeds:
            self.joined = True
            return
        self.joined = False
        self._join_at = now
        if self._join_timeout_ms is not None:
            self._join_deadline = now + self._join_timeout_ms

    def leave(self, now):
        """Leaves gracefully: tells every live member directly and via gossip."""
        if self._leaving:
            return
        resign = self.election.resign_for_leave(now)
        self._leaving = True
        self._probe = None
        signature = b""
        if self.election.signer is not None:
            signature = self.election.signer(wire.left_signed_bytes(self.codec.cluster_tag, self.name,
                                                                    self.incarnation), False)
        msg = wire.encode_message(wire.Left(name=self.name, incarnation=self.incarnation,
                                            signature=signature or b""))
        self.broadcasts.enqueue(self.name, msg)
        self._send_to_all([resign, msg] if resign is not None else [msg])
        self.left = True

    def set_priority(self, priority, now):
        """Changes this node's priority (0..255) and announces it."""
        if not isinstance(priority, int) or priority < 0 or priority > 255:
            raise ValueError("priority must be 0..255, got %r" % (priority,))
        if priority != self.priority:
            self.priority = priority
            self._bump_incarnation()
            self.election.evaluate(now)
            self.election.heartbeat(now)

    def eligible_by_operator(self):
        """What set_eligible() last said (the operator or the health check): the node may still be
        ineligible for want of a signing key (the advertised `eligible`)."""
        return self.user_eligible

    def set_eligible(self, eligible, now):
        """Makes this node (in)eligible to lead and announces it."""
        if bool(eligible) != self.user_eligible:
            self.user_eligible = bool(eligible)
            self.eligible = self.user_eligible and (self.election.trusted_keys is None
                                                    or self.election.signer is not None)
            self._bump_incarnation()
            self.election.evaluate(now)
            self.election.heartbeat(now)

    def successor(self, name=None):
        """As leader: the member transfer() would hand the role to, `name` or (None) the next in
        rank; raises ValueError saying why not (this node does not lead: it names the leader; the
        member is unknown, not alive, untrusted or ineligible)."""
        return self.election.successor(name)

    def transfer(self, name, now):
        """As leader: hands the role to member `name` (None: the next in rank) at once with a signed
        Handover (`leaderd transfer`); the successor claims the next term as soon as it hears it, and
        no node that ranks above it preempts it while it leads. Returns the successor's name;
        raises ValueError as successor() does."""
        return self.election.transfer(name, now)

    def set_election_keys(self, signer, verifier, trusted_keys, now):
        """Replaces the signing key, verifier and trust list (None: unsigned mode)."""
        if trusted_keys is not None and verifier is None:
            raise ValueError("a trust list needs a verifier")
        election = self.election
        election.signer = signer
        election.verifier = verifier
        election.trusted_keys = trusted_keys
        election.trust_changed()
        self._alive_signed = None  # signed with the old key, if any
        eligible = self.user_eligible and (trusted_keys is None or signer is not None)
        if eligible != self.eligible:
            self.eligible = eligible
            self._bump_incarnation()
        election.evaluate(now)

    def verification_done(self, data, signature, ok, now):
        """Reports a signature check the verifier deferred by returning None.

        Boards verify Ed25519 in slices between which they keep answering
        pings; the claim that needed the check is then processed.
        """
        token = self.election.verification_done(data, signature, ok, now)
        if token is not None and ok:
            # A member statement (a Left, or an Alive or sync record: the
            # arguments of _merge) that waited for its check: merged now.
            self._merge(*token)
        self._dirty = True
        self.election.evaluate(now)
        self._dirty = False

    def signing_done(self, data, signature, now):
        """Reports the signature of a claim the signer deferred by returning None.

        A board signs in slices, as it verifies; the claim is made (if it
        still is the one to make) when its signature is here. Resignations
        are always signed at once: the signer must not defer those.
        """
        signed = self._alive_signed
        if signed is not None and signed[0] == data:
            signed[1] = signature
            self._broadcast_self()
            return
        self.election.signing_done(data, signature, now)
        self._dirty = True
        self.election.evaluate(now)
        self._dirty = False

    def set_keyring(self, keyring):
        """Replaces the cluster keyring (list of keys, first primary; None: off)."""
        self.codec.set_keyring(Keyring(keyring) if keyring else None)

    # --- Queries --------------------------------------------------------

    def members(self):
        """Snapshots of all known members, this node included, sorted by name."""
        out = [m.snapshot() for m in self.table.members.values()]
        out.append(self._self_member())
        out.sort(key=lambda m: m.name)
        return out

    def member(self, name):
        """A snapshot of one member (this node included), or None."""
        if name == self.name:
            return self._self_member()
        m = self.table.get(name)
        return m.snapshot() if m is not None else None

    def leader(self):
        """(leader name, term) as this node follows it, or None."""
        e = self.election
        return None if e.leader is None else (e.leader, e.leader_term)

    def is_leader(self):
        """Whether this node holds the leadership now."""
        return self.election.leader == self.name

    def term(self):
        """The highest term this node has seen (its own claims included): the fencing token to beat."""
        return self.election.term

    @property
    def insecure(self):
        """True when claims are unsigned (no trust list configured)."""
        return self.election.insecure

    @property
    def authenticated(self):
        """True when datagrams carry the cluster key's tag (a keyring is set)."""
        return self.codec.keyring is not None

    def awareness_score(self):
        """Lifeguard's local health: 0 when this node keeps up, higher when it misses its own deadlines."""
        return self.awareness.score()

    def set_preempt(self, preempt, preempt_delay_ms):
        """Whether a better node takes the role from a sitting leader, and after how long (ms)."""
        self.election.preempt = preempt
        self.election.preempt_delay_ms = preempt_delay_ms

    def counters(self):
        """A copy of the node's counters (received, sent, dropped by reason, ...)."""
        return dict(self.stats)

    def has_seeds(self):
        """Whether the node has seeds to wait for: join() was given some (other than
        this node) and the join timeout, if any, has not passed without an answer."""
        return bool(self._seeds) and not self._join_timed_out

    def waiting_for_seeds(self):
        """Whether the election must still wait for a seed: not joined, and the join
        timeout (if any) not yet passed. After a lone start this is False while
        the seeds are still being tried."""
        return not self.joined and self.has_seeds()

    def live_count(self):
        """Live members (alive or suspect), this node included."""
        return self.table.live_count + 1

    def _self_member(self):
        return Member(self.name, self.address, self.incarnation,
                      STATE_LEFT if self._leaving else STATE_ALIVE,
                      self.priority, self.eligible, self.tags, 0)

    # --- The facade -----------------------------------------------------

    def datagrams_to_send(self, now):
        """The datagrams to send now, as [(bytes, (host, port))]; drains them."""
        out = self._out
        self._out = []
        return out

    def next_event(self):
        """The next event, or None."""
        if self._event_head >= len(self._events):
            if self._events:
                self._events = []
                self._event_head = 0
            return None
        event = self._events[self._event_head]
        self._event_head += 1
        return event

    def get_timer(self):
        """The earliest deadline (int ms) at which handle_timer must run, or None."""
        if self._leaving:
            return _NEVER
        t = self._probe_at
        probe = self._probe
        if probe is not None and not probe.acked:
            if probe.indirect_at is not None and probe.indirect_at < t:
                t = probe.indirect_at
            if probe.deadline_at < t:
                t = probe.deadline_at
        if len(self.broadcasts) and self._gossip_at < t:
            t = self._gossip_at
        if self._push_pull_at < t:
            t = self._push_pull_at
        if self._reprobe_at < t:
            t = self._reprobe_at
        if self._join_at is not None and self._join_at < t:
            t = self._join_at
        for seq in self._relays:
            at = self._relays[seq][2]
            if at < t:
                t = at
        s = self._next_suspicion_deadline()
        if s is not None and s < t:
            t = s
        s = self.election.get_timer()
        if s is not None and s < t:
            t = s
        if self._stalled_until is not None and t is not None and t < self._stalled_until:
            t = self._stalled_until
        return t

    def handle_timer(self, now):
        """Runs every deadline that is due at `now` (an internal error is contained: _contain)."""
        try:
            self._run_timers(now)
        except MemoryError:
            raise  # the shell's to handle (a board counts it and gives its heap a moment)
        except Exception as exc:
            self._contain("handle_timer", exc, now)

    def _contain(self, where, exc, now):
        # An exception from our own code (a bug, not bad input, which is
        # counted and dropped where it is read): counted, reported, kept for
        # the shell to log with its traceback, and the rest of that work
        # dropped, as a lost datagram or a late timer would be. The timers
        # then wait one probe interval, so a fault that repeats costs a
        # report a second, never a busy loop.
        self.stats["internal_errors"] += 1
        self.last_error = exc
        self._emit(events.InternalError(where=where, error="%s: %s" % (type(exc).__name__, exc)))
        self._stalled_until = now + self.profile.probe_interval_ms

    def _run_timers(self, now):
        if self._leaving:
            return
        if self._join_at is not None and now >= self._join_at:
            self._send_join(now)
        probe = self._probe
        if probe is not None and not probe.acked:
            if probe.indirect_at is not None and now >= probe.indirect_at:
                self._probe_indirect(probe, now)
            if now >= probe.deadline_at:
                self._probe_failed(probe, now)
        if now >= self._probe_at:
            self._start_probe(now)
        if self._relays:
            self._expire_relays(now)
        if self._suspicions:
            self._expire_suspicions(now)
        if now >= self._gossip_at:
            self._gossip(now)
            self._gossip_at = now + self.profile.gossip_interval_ms
        if now >= self._push_pull_at:
            if self._bootstrap_syncs > 0:
                self._bootstrap_syncs -= 1
                self._push_pull_at = now + self.profile.probe_interval_ms
            else:
                self._push_pull_at = now + self._push_pull_interval()
            target = self._live.pick(self.rng)
            if target is not None:
                self._send_sync(self.table.get(target).address, True, False)
        if now >= self._reprobe_at:
            self._reprobe_at = now + self.profile.dead_reprobe_interval_ms
            self._reap_and_reprobe(now)
        self.election.handle_timer(now)
        if self._dirty:
            self._dirty = False
            self.election.evaluate(now)

    def receive_datagram(self, data, addr, now):
        """Handles one datagram from addr; bad datagrams are counted and dropped.

        An internal error while handling it is contained (_contain).
        """
        try:
            self._receive(data, addr, now)
        except MemoryError:
            raise  # the shell's to handle (a board counts it and gives its heap a moment)
        except Exception as exc:
            self._contain("receive_datagram", exc, now)

    def _receive(self, data, addr, now):
        stats = self.stats
        stats["received_datagrams"] += 1
        stats["received_bytes"] += len(data)
        if self._leaving:
            return
        if len(data) > self.profile.mtu_bytes:
            self._drop("oversized", addr)
            return
        # What replies to an unproven address may take: this datagram's size (guard.py).
        self.guard.budget = len(data)
        try:
            sender, messages = self.codec.open(data)
        except wire.WireError as exc:
            self._drop(exc.reason, addr)
            return
        claims = None
        for msg in messages:
            t = msg.type_code
            if t == wire.T_CLAIM or t == wire.T_RESIGN or t == wire.T_HANDOVER:
                # After the membership news of the same datagram.
                if claims is None:
                    claims = []
                claims.append(msg)
            else:
                self._handle_message(msg, sender, addr, now)
        if claims is not None:
            if self._dirty:
                self._dirty = False
                self.election.evaluate(now)
            self.election.datagram_started()
            for msg in claims:
                if msg.type_code == wire.T_CLAIM:
                    self.election.receive_claim(msg, now)
                else:
                    self.election.receive_resign(msg, now)
            # A claim can outrank us (preempt may then re-arm); a resignation
            # leaves the role open.
            self._dirty = True
        if self._dirty:
            self._dirty = False
            self.election.evaluate(now)
        member = self.table.get(sender)
        if member is not None and member.state == STATE_DEAD:
            self.tell_dead(member, addr, now)

    # --- Message handling -----------------------------------------------

    def _handle_message(self, msg, sender, addr, now):
        t = msg.type_code
        if t == wire.T_PING:
            if msg.target != self.name and msg.target != wire.ANY_TARGET:
                self.stats["unexpected_ping"] += 1
                return
            # The one reply every stranger gets: no larger than its Ping.
            self._send(addr, [wire.encode_message(wire.Ack(seq=msg.seq))], self.guard.budget)
        elif t == wire.T_ACK:
            self._on_ack(msg.seq, addr, now)
        elif t == wire.T_NACK:
            probe = self._probe
            if probe is not None and probe.seq == msg.seq:
                probe.nacks += 1
        elif t == wire.T_PING_REQ:
            self._relay_ping(msg, addr, sender, now, self.guard.budget)
        elif t == wire.T_ALIVE:
            self._merge_statement(msg.name, msg.incarnation, STATE_ALIVE, now, msg.address, msg.priority,
                                  msg.eligible, msg.tags, msg.signature, sender, False)
        elif t == wire.T_SUSPECT or t == wire.T_DEAD:
            member = self.table.get(msg.name)
            if msg.by == self.name:
                # Our own suspicion, gossiped back to us, or a forgery that
                # speaks for us: either way nothing for us to learn (our
                # verdicts are made here, never taken from the wire).
                pass
            elif member is not None and msg.incarnation > member.incarnation \
                    and self._trusted(msg.name):
                # News above the incarnation a trusted member signed cannot
                # be true: forged. Counted, dropped.
                self.stats["dropped_incarnation"] += 1
            else:
                # Gossip does not bury the leader we follow: the news becomes
                # our own suspicion, which ends in a death only when our own
                # final probe goes unanswered (a live leader refutes it
                # meanwhile).
                dead = t == wire.T_DEAD and msg.name != self.election.leader
                self._merge(msg.name, msg.incarnation, STATE_DEAD if dead else STATE_SUSPECT, now, by=msg.by)
        elif t == wire.T_LEFT:
            if msg.name == self.name or self._known(msg.name, msg.incarnation, STATE_LEFT):
                self._merge(msg.name, msg.incarnation, STATE_LEFT, now, by=msg.name)
            elif not self._trusted(msg.name) or self._statement_checked(
                    msg.name, wire.left_signed_bytes(self.codec.cluster_tag, msg.name, msg.incarnation),
                    msg.signature, (msg.name, msg.incarnation, STATE_LEFT, now, None, 0, True, None, msg.name), now):
                # A trusted member's leave is believed only as it signed it.
                self._merge(msg.name, msg.incarnation, STATE_LEFT, now, by=msg.name)
        elif t == wire.T_SYNC:
            for (name, incarnation, address, priority, eligible, tags, signature), state \
                    in msg.records.entries(self._known_in_sync):
                # As memberlist does: a peer's "dead" becomes our "suspect",
                # so the member gets a chance to refute before we bury it;
                # so does a trusted member's "left", which a record cannot
                # prove (its signature is over its Alive, not its Left).
                if state == STATE_DEAD or (state == STATE_LEFT and self._trusted(name)):
                    state = STATE_SUSPECT
                # The sender's own record is first-hand news, and is gossiped
                # on like an Alive: that is how a joiner becomes known.
                self._merge_statement(name, incarnation, state, now, address, priority, eligible, tags,
                                      signature, sender, name != sender)
            if msg.reply_wanted:
                self._answer_sync(addr, sender, msg.session, now)
            # Any full state from a member joins us (its sync or its reply),
            # even while our seeds are down.
            if not self.joined:
                self._joined(now)

    def _answer_sync(self, addr, sender, session, now):
        # One reply a session, within the guard's rate limits; our whole
        # state goes only to an address that answers: a Ping first, the
        # reply when its Ack comes back (_on_ack). (A board, which challenges
        # no request, answers only a proven address, and keeps no rate-limit
        # entry for any other: micropython/build.py BOARD_REPLACE.)
        if not self.guard.busy(addr, session, now):
            if self.guard.known(addr):
                self._send_sync(addr, False, False, now)
            else:
                self._challenge(addr, sender, self._send_sync, (addr, False, False, now))

    def _on_ack(self, seq, addr, now):
        # An Ack from the address we pinged with that seq proves the address
        # answers (guard.py); one relayed from elsewhere proves nothing.
        probe = self._probe
        if probe is not None and probe.seq == seq:
            if not probe.acked:
                probe.acked = True
                self.awareness.apply_delta(-1)
            name = probe.target
        else:
            relay = self._relays.pop(seq, None)
            if relay is not None:
                if relay[3] == addr:
                    self.guard.known(addr, True)
                self._send(relay[0], [wire.encode_message(wire.Ack(seq=relay[1]))], relay[4])
                return
            name = self._final_probes.pop(seq, None)
            if name is None:
                # A challenge's Ack: what it held back goes now.
                owed = self.guard.pop(seq, addr)
                if owed is not None and owed[0] is not None:
                    owed[0](*owed[1])
                return
            suspicion = self._suspicions.get(name)
            if suspicion is not None and suspicion.final_seq == seq:
                suspicion.final_acked = True
        member = self.table.get(name)
        if member is not None and member.address == addr:
            # The member's own tuple, not the datagram's: one object fewer
            # to keep per member (a board's heap).
            self.guard.known(member.address, True)

    # --- Merging news ---------------------------------------------------

    # Signed membership. With a trust list, a trusted member's metadata
    # (incarnation, address, priority, eligibility, tags) is believed only as
    # that member signed it: an Alive or sync record about a trusted name is
    # merged only once its own signature over the statement checks out
    # (boards, which verify no member records, merge it and carry the
    # signature on), and a Left only with its signature. News that a
    # trusted member is suspect or dead names an incarnation; one above the
    # incarnation it signed is forged and dropped. Gossip may still make a
    # member suspect or dead; only the election's own rules (election.py)
    # decide who leads.

    def _trusted(self, name):
        """Whether name is in the trust list (signed mode): its metadata must be its own signed word."""
        keys = self.election.trusted_keys
        return keys is not None and name in keys

    def _statement_checked(self, name, data, signature, token, now):
        """Whether `name`'s own signature over `data` checks out (False while it waits: token)."""
        election = self.election
        reason = election.check(name, data, signature, token, now,
                                name == election.leader or name == election.candidate())
        if reason is None:
            return True
        if reason != "pending":
            self._count(reason)  # dropped_unsigned, dropped_bad_signature, dropped_busy
        return False

    def _merge_statement(self, name, incarnation, state, now, address, priority, eligible, tags,
                         signature, sender, from_sync):
        """Merges an Alive or a sync record, checking a trusted member's signature first."""
        if name == self.name or self._known(name, incarnation, state) or not self._trusted(name):
            self._merge(name, incarnation, state, now, address, priority, eligible, tags, sender,
                        from_sync, signature)
            return
        token = (name, incarnation, state, now, address, priority, eligible, tags, sender, from_sync, signature)
        if not self.member_checks:
            if len(signature) == wire.SIGNATURE_BYTES:
                self._merge(*token)
            else:
                self._count("unsigned")
            return
        data = wire.alive_signed_bytes(self.codec.cluster_tag, name, incarnation, address, priority,
                                       eligible, tags)
        if self._statement_checked(name, data, signature, token, now):
            self._merge(*token)
            member = self.table.get(name)
            if member is not None and member.address == address:
                # The address a trusted member signed is its own word, not
                # a stranger's: proven without a round trip (guard.py).
                self.guard.known(member.address, True)

    def _known(self, name, incarnation, state):
        """Whether news (incarnation, state) about name is old here: _merge would ignore it."""
        if name == self.name:
            return False
        member = self.table.members.get(name)
        return member is not None and (incarnation < member.incarnation or (
            incarnation == member.incarnation and state == member.state and state != STATE_SUSPECT))

    def _known_in_sync(self, name, incarnation, state):
        # _known for a state-sync record, whose "dead" is merged as "suspect".
        return self._known(name, incarnation, STATE_SUSPECT if state == STATE_DEAD else state)

    def _merge(self, name, incarnation, state, now, address=None, priority=0, eligible=True,
               tags=None, by="", from_sync=False, signature=b""):
        """Applies one piece of membership news and acts on the transition.

        News from a state sync about a member new to us is not gossiped on:
        whoever synced with us already knows it, and the member announced
        itself when it joined (this keeps a join into a large cluster from
        re-gossiping the whole table). Every other change is gossiped on.
        """
        if name == self.name:
            self._news_about_self(incarnation, state, address, priority, eligible, tags, now)
            return
        if self._known(name, incarnation, state):
            return  # old news, the common case in a sync: MemberTable.apply would ignore it
        table = self.table
        known = name in table.members
        transition = table.apply(name, incarnation, state, now, address, priority, eligible, tags, signature)
        if transition == IGNORED:
            return
        member = table.get(name)
        if transition != CONFIRMED:
            self._dirty = True
            self.election.member_changed(member)
        if transition == RECORDED:
            if member.state == STATE_DEAD:
                self._dead.add(name)
            return
        announce = known or not from_sync
        if transition == CONFIRMED:
            suspicion = self._suspicions.get(name)
            if suspicion is not None and suspicion.confirm(by):
                self._suspicion_next = _NEVER
                self.broadcasts.enqueue(name, wire.encode_message(
                    wire.Suspect(name=name, incarnation=incarnation, by=by)))
            return
        if transition != SUSPECTED and name in self._suspicions:
            del self._suspicions[name]
            self._suspicion_next = _NEVER
        if member.state <= STATE_SUSPECT:
            if name not in self._live:
                self._live.add(name)
                # As memberlist: a new member goes to a random place in the
                # rest of this probe round, not to the next round, which at
                # 1000 members starts minutes from now.
                order = self._probe_order
                at = self._probe_pos + randbelow(self.rng, len(order) - self._probe_pos + 1)
                order.insert(at, name)
            self._dead.discard(name)
            self._told_dead.pop(name, None)
        else:
            self._live.discard(name)
            if member.state == STATE_DEAD:
                self._dead.add(name)
            else:
                self._dead.discard(name)
        if transition == SUSPECTED:
            n = self.live_count()
            lo, hi = suspicion_bounds_ms(self.profile, n)
            # As memberlist: when too few members could confirm, expect none
            # and use the minimum timeout (small clusters fail over fast).
            expected = self.profile.suspicion_confirmations
            if n - 2 < expected:
                expected = 0
            self._suspicions[name] = Suspicion(by, now, lo, hi, expected)
            if by != self.name and expected > 0:
                # Lifeguard's confirmations only come from members that probe
                # the suspect, and round robin reaches it about twice a
                # second in all. So a few members, drawn at random (about
                # twice the confirmations wanted), probe it next: the timeout
                # falls to its minimum within a probe interval or two.
                if randbelow(self.rng, n - 1) < 2 * expected:
                    self._urgent_probe = name
            self._suspicion_next = _NEVER
            if announce:
                self.broadcasts.enqueue(name, wire.encode_message(
                    wire.Suspect(name=name, incarnation=incarnation, by=by)))
            self._emit(events.MemberSuspected(name=name, incarnation=incarnation, by=by))
        elif transition == DIED:
            self.broadcasts.enqueue(name, wire.encode_message(
                wire.Dead(name=name, incarnation=incarnation, by=by)))
            self._emit(events.MemberDied(name=name, incarnation=incarnation, by=by))
        elif transition == LEFT:
            self.broadcasts.enqueue(name, wire.encode_message(
                wire.Left(name=name, incarnation=incarnation)))
            self._emit(events.MemberLeft(name=name, incarnation=incarnation))
        else:
            if announce:
                self.broadcasts.enqueue(name, self._alive_message(member))
            address = member.address
            incarnation = member.incarnation
            priority = member.priority
            eligible = member.eligible
            if transition == UPDATED:
                event = events.MemberUpdated(name=name, address=address, incarnation=incarnation,
                                             priority=priority, eligible=eligible)
            elif transition == RECOVERED:
                event = events.MemberRecovered(name=name, address=address, incarnation=incarnation,
                                               priority=priority, eligible=eligible)
            else:
                event = events.MemberJoined(name=name, address=address, incarnation=incarnation,
                                            priority=priority, eligible=eligible)
            self._emit(event)

    def _news_about_self(self, incarnation, state, address, priority, eligible, tags, now):
        """Refutes news that would replace our own alive entry (SWIM refutation)."""
        if self._leaving:
            return
        self._twin(incarnation, state, address)
        if state == STATE_ALIVE:
            if incarnation < self.incarnation:
                return
            if incarnation == self.incarnation and address == self.address \
                    and priority == self.priority and eligible == self.eligible:
                return
        elif not supersedes(incarnation, state, self.incarnation, STATE_ALIVE):
            # Stale bad news about us: whoever holds it missed our refutation.
            # Announce our current state again (it also rides on our ack), at
            # most once per probe interval.
            if self._reannounced_at is None or now - self._reannounced_at >= self.profile.probe_interval_ms:
                self._reannounced_at = now
                self._broadcast_self()
            return
        if incarnation >= _MAX_INCARNATION or incarnation > self.incarnation + _INCARNATION_WINDOW:
            # Only we raise our incarnation, one step at a time: news far
            # above it is forged. Counted, never adopted (adopting it could
            # pin us at the ceiling, where we could never refute again).
            self.stats["dropped_incarnation"] += 1
            return
        # Lifeguard: being suspected means we may be the slow one.
        if state == STATE_SUSPECT:
            self.awareness.apply_delta(1)
        self.incarnation = incarnation
        self.stats["refutations"] += 1
        self._bump_incarnation()
        self._emit(events.SelfRefuted(incarnation=self.incarnation, state=wire.STATE_NAMES[state]))
        # If we lead, a heartbeat at once carries the new incarnation, signed;
        # a follower that dropped us follows it again (same term).
        self.election.heartbeat(now)

    def _twin(self, incarnation, state, address):
        # Our name, alive at another address, and not old news of us:
        # another agent with our name (each refutes the other for ever), or
        # a forger. Counted and reported (the event queue is bounded; the
        # daemon rate-limits its warnings). Not on a board (BOARD_REPLACE
        # in micropython/build.py: heap).
        if state == STATE_ALIVE and address is not None and address != self.address \
                and incarnation >= self.incarnation:
            self.stats["duplicate_name"] = self.stats.get("duplicate_name", 0) + 1
            self._emit(events.DuplicateName(address=address, incarnation=incarnation))

    def _bump_incarnation(self):
        # Never raises: the ceiling (2^32 - 1) is out of reach one step at a
        # time, since forged news is never adopted; there the change is
        # announced at the same incarnation.
        if self.incarnation < _MAX_INCARNATION:
            self.incarnation += 1
        self.election.set_local(self.priority, self.incarnation, self.user_eligible)
        self._broadcast_self()

    def _broadcast_self(self):
        self.broadcasts.enqueue(self.name, self.alive_message())

    def _own_signature(self):
        """Our signature over our current Alive statement: b"" if unsigned or still being signed."""
        signer = self.election.signer
        if signer is None:
            return b""
        data = wire.alive_signed_bytes(self.codec.cluster_tag, self.name, self.incarnation, self.address,
                                       self.priority, self.eligible, self.tags)
        signed = self._alive_signed
        if signed is not None and signed[0] == data:
            return signed[1] or b""
        # None when deferred (a board signs in slices): sent unsigned
        # meanwhile, announced again, signed, when signing_done() brings it.
        self._alive_signed = [data, signer(data, True)]
        return self._alive_signed[1] or b""

    def alive_message(self):
        """This node's current Alive message, encoded (signed when it has a signing key)."""
        return wire.encode_message(wire.Alive(name=self.name, incarnation=self.incarnation, address=self.address,
                                              priority=self.priority, eligible=self.eligible, tags=self.tags,
                                              signature=self._own_signature()))

    def _alive_message(self, m):
        return wire.encode_message(wire.Alive(name=m.name, incarnation=m.incarnation, address=m.address,
                                              priority=m.priority, eligible=m.eligible, tags=m.tags,
                                              signature=m.signature))



    # --- Probing --------------------------------------------------------

    def _next_seq(self):
        self._seq = (self._seq + 1) & 0x3FFFFFFF
        return self._seq

    def _start_probe(self, now):
        interval = self.awareness.scale_ms(self.profile.probe_interval_ms)
        self._probe_at = now + interval
        target = self._next_probe_target()
        if target is None:
            self._probe = None
            return
        member = self.table.get(target)
        seq = self._next_seq()
        timeout = self.awareness.scale_ms(self.profile.probe_timeout_ms)
        self._probe = _Probe(target, member.incarnation, seq, now + timeout, now + interval)
        self.stats["probes"] += 1
        messages = []
        if member.state == STATE_SUSPECT:
            # Buddy system: tell the suspect first, so it can refute at once.
            messages.append(wire.encode_message(
                wire.Suspect(name=target, incarnation=member.incarnation, by=self.name)))
        messages.append(wire.encode_message(wire.Ping(seq=seq, target=target)))
        self._send(member.address, messages)

    def _next_probe_target(self):
        urgent = self._urgent_probe
        if urgent is not None:
            self._urgent_probe = None
            member = self.table.get(urgent)
            if member is not None and member.state == STATE_SUSPECT:
                return urgent
        order = self._probe_order
        for _ in range(2):
            while self._probe_pos < len(order):
                name = order[self._probe_pos]
                self._probe_pos += 1
                if name in self._live:
                    return name
            order = list(self._live.names)
            shuffle(self.rng, order)
            self._probe_order = order
            self._probe_pos = 0
            if not order:
                return None
        return None

    def _probe_indirect(self, probe, now):
        probe.indirect_at = None
        member = self.table.get(probe.target)
        if member is None or not member.is_live():
            return
        relays = self._live.pick_distinct(self.rng, self.profile.indirect_checks, exclude=probe.target)
        msg = wire.encode_message(wire.PingReq(seq=probe.seq, target=probe.target, address=member.address))
        for name in relays:
            relay = self.table.get(name)
            if relay.state == STATE_ALIVE:
                probe.nacks_expected += 1
                self._send(relay.address, [msg])

    def _probe_failed(self, probe, now):
        self._probe = None
        if probe.nacks_expected > 0:
            delta = probe.nacks_expected - probe.nacks
        else:
            delta = 1
        self.awareness.apply_delta(delta)
        member = self.table.get(probe.target)
        if member is None or not member.is_live():
            return
        self.stats["probe_failures"] += 1
        # Suspects the incarnation we probed (a newer one since is news we
        # must not override); a suspect member gets our confirmation.
        self._merge(member.name, probe.incarnation, STATE_SUSPECT, now, by=self.name)

    def _relay_ping(self, msg, requester, sender, now, limit):
        """Pings msg.target for a PingReq from requester (named sender).

        limit: the bytes the PingReq's datagram leaves for replies to
        unproven addresses (guard.py). Only a requester at a proven address
        is served (a stranger gets a challenge, and the relay once it
        answers: then only the target may be unproven, and its Ping fits
        the PingReq), never twice for one (requester, seq) at a time, at
        most 4 at a time for one requester (its probe and a few final
        probes), and only to an allowed IP literal.
        """
        guard = self.guard
        relays = self._relays
        if not address_allowed(msg.address, guard.own):
            self.stats["refused_relay_address"] = self.stats.get("refused_relay_address", 0) + 1
            return
        busy = 0
        for seq in relays:
            relay = relays[seq]
            if relay[0] == requester:
                if relay[1] == msg.seq:
                    self.stats["refused_relay_duplicate"] = self.stats.get("refused_relay_duplicate", 0) + 1
                    return
                busy += 1
        if busy >= 4 or len(relays) >= _MAX_RELAYS:
            self.stats["refused_relay_busy"] = self.stats.get("refused_relay_busy", 0) + 1
            return
        if not guard.known(requester):
            self._challenge(requester, sender, self._relay_ping, (msg, requester, sender, now, limit))
            return
        # Random, not the probe counter: this seq's Ack proves the target's address.
        seq = self.rng.getrandbits(30)
        while seq in relays:
            seq = self.rng.getrandbits(30)
        relays[seq] = (requester, msg.seq, now + self.profile.probe_timeout_ms, msg.address, limit)
        self._send(msg.address, [wire.encode_message(wire.Ping(seq=seq, target=msg.target))], limit)

    def _challenge(self, addr, name, action, args):
        """Pings addr (as name) with a challenge whose Ack releases action(*args) (guard.py).

        The Ping is a reply to the datagram being handled: it must fit what
        that left (guard.budget), or it is not sent and nothing waits.
        """
        guard = self.guard
        seq = guard.owe(addr, action, args)
        if self._send(addr, [wire.encode_message(wire.Ping(seq=seq, target=name))], guard.budget):
            self.stats["challenges_sent"] = self.stats.get("challenges_sent", 0) + 1
        else:
            guard.pop(seq, None)

    def _expire_relays(self, now):
        done = [seq for seq in self._relays if self._relays[seq][2] <= now]
        for seq in done:
            relay = self._relays.pop(seq)
            self._send(relay[0], [wire.encode_message(wire.Nack(seq=relay[1]))], relay[4])

    # --- Suspicion ------------------------------------------------------

    # A suspicion that times out is not declared dead at once: we first send
    # the suspect one last ping carrying the suspicion (the buddy system) and
    # give it a probe timeout to answer. A live suspect whose refutation we
    # missed (gossip is probabilistic, and loses more on lossy links) answers
    # with its ack and its current Alive; a dead one costs us one probe
    # timeout of detection time. Lifeguard's principle, applied to the
    # verdict: do not convict on rumour alone when a direct check is cheap.

    def _suspicion_due(self, suspicion):
        verdict_at = suspicion.verdict_at
        return verdict_at if verdict_at is not None else suspicion.deadline_ms()

    def _next_suspicion_deadline(self):
        if self._suspicion_next is _NEVER and self._suspicions:
            best = None
            for name in self._suspicions:
                d = self._suspicion_due(self._suspicions[name])
                if best is None or d < best:
                    best = d
            self._suspicion_next = best
        return self._suspicion_next

    def _expire_suspicions(self, now):
        due = self._next_suspicion_deadline()
        if due is None or due > now:
            return
        expired = [n for n in self._suspicions if self._suspicion_due(self._suspicions[n]) <= now]
        expired.sort()
        for name in expired:
            suspicion = self._suspicions[name]
            self._suspicion_next = _NEVER
            member = self.table.get(name)
            if member is None or member.state != STATE_SUSPECT:
                del self._suspicions[name]
                continue
            if suspicion.verdict_at is None:
                self._final_probe(member, suspicion, now)
                continue
            del self._suspicions[name]
            if suspicion.final_acked:
                # It answered but its refutation did not reach us: keep it
                # suspect, with a fresh timeout, until the refutation does.
                lo, hi = suspicion_bounds_ms(self.profile, self.live_count())
                self._suspicions[name] = Suspicion(suspicion.by, now, lo, hi, 0)
                continue
            self._merge(name, member.incarnation, STATE_DEAD, now, by=self.name)

    def _final_probe(self, member, suspicion, now):
        seq = self._next_seq()
        suspicion.final_seq = seq
        suspicion.final_acked = False
        suspicion.verdict_at = now + self.awareness.scale_ms(self.profile.probe_timeout_ms)
        self._final_probes[seq] = member.name
        if len(self._final_probes) > self._max_final_probes:
            self._final_probes = {seq: member.name}
        self._send(member.address, [
            wire.encode_message(wire.Suspect(name=member.name, incarnation=member.incarnation, by=self.name)),
            wire.encode_message(wire.Ping(seq=seq, target=member.name))])
        # And at the same time through relays, as an indirect probe does, so
        # one lossy link cannot convict a live member.
        request = wire.encode_message(wire.PingReq(seq=seq, target=member.name, address=member.address))
        for name in self._live.pick_distinct(self.rng, self.profile.indirect_checks, exclude=member.name):
            relay = self.table.get(name)
            if relay.state == STATE_ALIVE:
                self._send(relay.address, [request])

    # --- Dissemination and sync -----------------------------------------

    def _send_to_all(self, messages):
        # To every live member directly (_send fills in updates).
        for name in self._live.names:
            self._send(self.table.get(name).address, messages)

    def _send(self, addr, messages, limit=None):
        """Sends the messages to addr, filling the rest of the datagram with updates.

        To an address that has not proven it answers (guard.py), a reply
        (limit: what the datagram that caused it left, guard.budget) is at
        most limit bytes, and what this node sends of its own accord
        (limit None: a probe, a claim) carries no updates. Returns False,
        sending nothing, when the messages alone exceed the limit.
        """
        budget = self.profile.mtu_bytes - self.codec.overhead()
        proven = self.guard.known(addr)
        capped = limit is not None and not proven
        if capped and limit - self.codec.overhead() < budget:
            budget = limit - self.codec.overhead()
        for m in messages:
            budget -= len(m)
        if budget < 0 and capped:
            self.stats["refused_reply_size"] = self.stats.get("refused_reply_size", 0) + 1
            return False
        if len(self.broadcasts) and budget > 0 and (proven or capped):
            messages = messages + self.broadcasts.get_broadcasts(
                budget, self.live_count(), self.profile.retransmit_mult)
        data = self.codec.seal(messages)
        if capped:
            self.guard.budget -= len(data)
        self._emit_datagram(data, addr, True)
        return True

    def _emit_datagram(self, data, addr, ok=False):
        """Queues one datagram for the shell.

        ok: built by _send or _send_sync, which apply the guard's rules.
        One that is not (a gossip round's) to an address that has not proven
        it answers goes out once, with a bare Ping whose Ack proves the
        address; while that Ping is unanswered, later ones are dropped (a
        Ping again every few): a forged member's address gets one gossip
        datagram, not one a round.
        """
        if not ok and not self.guard.known(addr):
            first, challenge = self.guard.send(addr, None, None)
            if challenge is not None:
                self._emit_datagram(challenge, addr, True)
            if not first:
                self.stats["refused_gossip_unproven"] = self.stats.get("refused_gossip_unproven", 0) + 1
                return
        stats = self.stats
        stats["sent_datagrams"] += 1
        stats["sent_bytes"] += len(data)
        if len(data) > stats["max_sent_bytes"]:
            stats["max_sent_bytes"] = len(data)
        self._out.append((data, addr))

    def _gossip(self, now):
        if not len(self.broadcasts):
            return
        budget = self.profile.mtu_bytes - self.codec.overhead()
        n = self.live_count()
        for name in self._gossip_targets(now):
            if not len(self.broadcasts):
                break
            payload = self.broadcasts.get_broadcasts(budget, n, self.profile.retransmit_mult)
            if payload:
                self._emit_datagram(self.codec.seal(payload), self.table.get(name).address)

    def _gossip_targets(self, now):
        k = self.profile.gossip_nodes
        targets = self._live.pick_distinct(self.rng, k)
        if self._dead and len(targets) < k + 1:
            # Dead members hear gossip for a while, so they learn and refute.
            name = self._dead.pick(self.rng)
            member = self.table.get(name)
            if now - member.since_ms < self.profile.gossip_to_the_dead_ms:
                targets.append(name)
        return targets

    def _encoded_records(self, is_live=False):
        # Each member's record is encoded once per change, not once per sync.
        # is_live: this node's record, then live members, then the rest.
        out = [wire.encode_record(wire.Record(self.name, self.incarnation, self.address, self.priority,
                                              self.eligible, self.tags, STATE_ALIVE, self._own_signature()))]
        rest = [] if is_live else out
        for m in self.table.members.values():
            data = m.encoded
            if data is None:
                data = wire.encode_record(wire.Record(m.name, m.incarnation, m.address, m.priority,
                                                      m.eligible, m.tags, m.state, m.signature))
                if self._cache_records:
                    m.encoded = data
            if m.state <= STATE_SUSPECT:
                out.append(data)
            else:
                rest.append(data)
        if is_live:
            out.extend(rest)
        return out

    def _send_sync(self, addr, reply_wanted, join, now=None):
        # now: given for a reply, which waits for the guard's global cap.
        guard = self.guard
        if now is not None and guard.spent(now, self.table.live_count):
            return
        if reply_wanted and not join and not guard.known(addr):
            # A push-pull or dead reprobe, to an address learned from the
            # network that never answered us: a bare Ping first (any name
            # answers), the state when its Ack comes back (_on_ack); while
            # it is unanswered, nothing more (a Ping again now and then). A
            # forged member's address gets pings, never our state. Joins go
            # to the seeds the operator configured, at once.
            challenge = guard.send(addr, self._send_sync, (addr, True, False))[1]
            if challenge is not None:
                self._emit_datagram(challenge, addr, True)
            return
        budget = self.profile.mtu_bytes - self.codec.overhead()
        claim = self.election.claim_for_sync()
        if claim is not None:
            budget -= len(claim)
        # More than one sync carries (255 pages) is cut, this node and the
        # live members first: never an error (forged members may have filled
        # the table).
        records = guard.truncated(self._encoded_records(), budget, self._encoded_records)
        pages = wire.sync_page_parts(self._next_seq(), reply_wanted, join, records, budget)
        if claim is not None:
            # The claim rides with the last page, after the members it names.
            pages[-1].append(claim)
        for parts in pages:
            self._emit_datagram(self.codec.seal(parts), addr, True)

    def _joined(self, now):
        """The first sync reply arrived: announce ourselves to all we now know,
        and sync a few more times soon, so nodes that joined at the same
        moment through other seeds learn of each other within seconds
        instead of one push-pull interval."""
        self.joined = True
        if not self._join_timed_out:
            self._join_at = _NEVER
        # (After a lone start, whoever synced with us may not be our seeds'
        # side: _send_join goes on until a seed is a live member.)
        self._broadcast_self()
        self._bootstrap_syncs = _BOOTSTRAP_SYNCS
        self._push_pull_at = now + self.profile.probe_interval_ms
        # The start-up hold-down may have passed while we waited for a seed.
        self._dirty = True

    def _send_join(self, now):
        if self.joined:
            merged = not self._join_timed_out
            if not merged:
                # After a lone start: done once a seed address is a live member's.
                for member in self.table.members.values():
                    if member.is_live() and member.address in self._seeds:
                        merged = True
                        break
            if merged:
                self._join_at = _NEVER
                return
        self._join_at = now + self.profile.join_retry_ms
        deadline = self._join_deadline
        if deadline is not None and not self.joined and not self._join_timed_out:
            if now >= deadline:
                # Lone start: the election stops waiting (has_seeds() is now
                # False); the seeds are tried on as before.
                self._join_timed_out = True
                self._dirty = True
                seeds = []
                for seed in self._seeds:
                    seeds.append("%s:%d" % seed)
                self._emit(events.JoinTimedOut(seeds=seeds, after_ms=self._join_timeout_ms))
            elif deadline < self._join_at:
                self._join_at = deadline
        for seed in self._seeds:
            self._send_sync(seed, True, True)

    def _push_pull_interval(self):
        # memberlist pushPullScale: beyond 32 members, scale by log2(n / 32).
        interval = self.profile.push_pull_interval_ms
        n = self.live_count()
        mult = 1
        threshold = 32
        while n > threshold:
            threshold *= 2
            mult += 1
        return interval * mult

    def tell_dead(self, member, addr, now):
        """Tells a member we hold dead that we do, so it can refute (rate-limited)."""
        last = self._told_dead.get(member.name)
        if last is not None and now - last < self.profile.probe_interval_ms:
            return
        self._told_dead[member.name] = now
        self._send(addr, [wire.encode_message(
            wire.Dead(name=member.name, incarnation=member.incarnation, by=self.name))], self.guard.budget)

    def _reap_and_reprobe(self, now):
        reap = [m.name for m in self.table.members.values()
                if m.state >= STATE_DEAD and now - m.since_ms >= self.profile.dead_reap_ms]
        for name in reap:
            self.table.remove(name)
            self._dead.discard(name)
            self._told_dead.pop(name, None)
        dead = self._dead.names
        if dead:
            # In turn through the dead list (removal swaps the last name into
            # the gap, so one may come up early; none waits past a full turn
            # of a list that did not change).
            if self._reprobe_turn >= len(dead):
                self._reprobe_turn = 0
            name = dead[self._reprobe_turn]
            self._reprobe_turn += 1
            self._send_sync(self.table.get(name).address, True, False)

    # --- Events and drops -----------------------------------------------

    def _emit(self, event):
        if len(self._events) - self._event_head < _MAX_EVENTS:
            self._events.append(event)

    def _drop(self, reason, addr):
        self._count(reason)
        self._emit(events.DatagramDropped(reason=reason, address=addr))

    def _count(self, reason):
        key = "dropped_" + reason
        self.stats[key] = self.stats.get(key, 0) + 1
