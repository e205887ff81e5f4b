"""Leader election with signed, ever-growing terms (a fencing token).

Theory of operation
-------------------
The leader is the eligible live member with the highest (priority, name):
live means alive or suspect (one missed probe does not move the role);
eligible means priority > 0, the member's eligible flag set (its health check
passes) and, when a trust list is configured, a trusted key under its name.

A node that finds itself in that place, once past its start-up hold-down,
claims term = (highest term it has seen) + 1: a Claim {cluster, term, name,
priority, incarnation} signed with its Ed25519 key, sent at once to every
live member and gossiped on by each member that accepts it. The leader
re-asserts its claim every claim_interval_ms, and state syncs carry it, so
late joiners and healed partitions learn it.

A claim is accepted only with a valid signature from the trust list and from
a live member; among claims the highest (term, priority, name) wins, a node
that loses steps down at once, and a claim at or below a term already
settled is stale and ignored. The term a node follows never decreases.

A sitting leader keeps the role while it is live and eligible. With
`preempt`, a better candidate takes over once it has been up for
`preempt_delay_ms`; without, only when the leader fails or resigns. A leader
that leaves resigns first: a signed Resign for its term, so the next node
claims without waiting for failure detection.

Slow crypto (a board: most of a second for one Ed25519 operation) is
deferred, never done on the receive path: a verifier may return None and
report later through verification_done(); a signer may return None for a
claim and report through signing_done(), and the claim is made only then
(if it still is the one to make). Resignations are signed at once.
"""

from agent.core import events, wire

_CLAIM_KEY = "\x00claim"
_CACHE_SIZE = 64
_MAX_TERM = 0xFFFFFFFF
# Claims waiting for a deferred signature check (boards verify in slices).
_MAX_PENDING = 8


class Election:
    """The election state of one node (owned and driven by Node)."""

    def __init__(self, node, now, signer=None, verifier=None, trusted_keys=None,
                 preempt=True, preempt_delay_ms=5000, cache_size=None):
        self.node = node
        self.signer = signer
        self.verifier = verifier
        self.trusted_keys = trusted_keys
        # Unsigned mode: no trust list. Every node reports it, never silently.
        self.insecure = trusted_keys is None
        self.preempt = preempt
        self.preempt_delay_ms = preempt_delay_ms
        self.started_ms = now
        self.term = 0                 # highest term seen or claimed
        self.leader = None            # name of the leader followed, or None
        self.leader_term = 0
        self.leader_priority = 0
        self.leader_incarnation = 0
        self.settled_term = 0         # claims below this term are stale...
        self.resigned_leader = None   # ...and this one's at exactly that term
        self.settled_claim = None     # the claim we dropped, encoded (a hint for stale leaders)
        self._hinted = None
        self.claim_message = None     # the accepted claim, encoded
        self.reassert_at = None
        self.wake_at = None           # hold-down or preempt delay ends
        self._signing = None          # claim bytes a deferring signer is signing
        self._signed = None           # (claim bytes, signature) it gave back
        self._verified = {}
        # Signature checks remembered (a board keeps fewer: ~150 bytes each).
        self._cache_size = cache_size or _CACHE_SIZE
        self._pending = {}
        # Best (priority, name) among the other members, cached: the table
        # can hold a thousand members and changes arrive one at a time.
        self._others_key = None
        self._others_valid = False

    # --- The rule -------------------------------------------------------

    def can_lead(self):
        """Whether this node may claim: priority > 0, eligible, able to sign."""
        node = self.node
        if node.priority == 0 or not node.user_eligible:
            return False
        if self.insecure:
            return True
        return self.signer is not None and node.name in self.trusted_keys

    def _eligible(self, member):
        if member.priority == 0 or not member.eligible or not member.is_live():
            return False
        return self.insecure or member.name in self.trusted_keys

    def candidate(self):
        """The name of the best eligible live member (this node included), or None."""
        node = self.node
        best = None
        best_key = None
        if self.can_lead():
            best = node.name
            best_key = (node.priority, node.name)
        if not self._others_valid:
            self._scan_others()
        if self._others_key is not None and (best_key is None or self._others_key > best_key):
            best = self._others_key[1]
        return best

    def _scan_others(self):
        best_key = None
        for member in self.node.table.members.values():
            if self._eligible(member):
                key = (member.priority, member.name)
                if best_key is None or key > best_key:
                    best_key = key
        self._others_key = best_key
        self._others_valid = True

    def member_changed(self, member):
        """Keeps the cached best other member current after a change to `member`."""
        if not self._others_valid:
            return
        best = self._others_key
        if self._eligible(member):
            key = (member.priority, member.name)
            if best is None or key > best:
                self._others_key = key
            elif best[1] == member.name and key != best:
                self._others_valid = False
        elif best is not None and best[1] == member.name:
            self._others_valid = False

    def trust_changed(self):
        """Call after replacing trusted_keys (the eligible set may change)."""
        self.insecure = self.trusted_keys is None
        self._others_valid = False

    # --- Evaluation -----------------------------------------------------

    def evaluate(self, now):
        """Re-applies the rule after a change of membership, eligibility or time."""
        node = self.node
        self.wake_at = None
        if self.leader is not None and self.leader != node.name:
            member = node.table.get(self.leader)
            if member is None or not member.is_live() or (
                    not self._eligible(member) and member.incarnation >= self.leader_incarnation):
                # (Metadata older than the claim is not a reason: the claim
                # says the leader was eligible at a newer incarnation.)
                self._drop_leader(now)
        if self.leader == node.name and not self.can_lead():
            # Tell everyone at once, with our new metadata, so the next
            # candidate claims without waiting for gossip.
            node.send_to_all([node.alive_message(), self._resign(now, "ineligible")])
        if self.leader == node.name:
            return
        if self.candidate() != node.name:
            return
        # The hold-down grows with the cluster (log10 n), as convergence does.
        n = node.live_count()
        holddown = node.profile.startup_holddown_ms
        if n > 10:
            holddown = holddown * (len(str(n)) - 1)
        ready_at = self.started_ms + holddown
        if not node.joined and node.has_seeds():
            ready_at = None
        if self.leader is None:
            if ready_at is not None and now >= ready_at:
                self._claim(now)
            elif ready_at is not None:
                self.wake_at = ready_at
            return
        if self.preempt and (node.priority, node.name) > (self._leader_priority_now(), self.leader):
            at = self.started_ms + self.preempt_delay_ms
            if ready_at is not None and ready_at > at:
                at = ready_at
            if ready_at is not None and now >= at:
                self._claim(now)
            elif ready_at is not None:
                self.wake_at = at

    def _leader_priority_now(self):
        """The leader's priority: from its member entry, unless the claim is newer."""
        member = self.node.table.get(self.leader)
        if member is not None and member.incarnation >= self.leader_incarnation:
            return member.priority
        return self.leader_priority

    def get_timer(self):
        """The earliest election deadline, or None."""
        t = self.wake_at
        if self.reassert_at is not None and (t is None or self.reassert_at < t):
            t = self.reassert_at
        return t

    def handle_timer(self, now):
        """Re-asserts the claim when due and re-evaluates after a hold-down."""
        if self.reassert_at is not None and now >= self.reassert_at:
            self.reassert_at = now + self.node.profile.claim_interval_ms
            if self.leader == self.node.name and self.claim_message is not None:
                self.node.broadcasts.enqueue(_CLAIM_KEY, self.claim_message)
        if self.wake_at is not None and now >= self.wake_at:
            self.evaluate(now)

    # --- Claims ---------------------------------------------------------

    def reclaim(self, now):
        """After refuting our own death: claim again with a fresh term, since
        the others dropped us and ignore our old term as settled."""
        if self.leader == self.node.name and self.can_lead():
            self._claim(now)

    def _claim(self, now):
        node = self.node
        term = self.term + 1
        if term >= _MAX_TERM:
            return  # terms exhausted (2^32 - 1): only forged claims get here
        signature = b""
        if self.signer is not None:
            data = wire.claim_signed_bytes(node.codec.cluster_tag, term, node.name, node.priority,
                                           node.incarnation)
            if self._signed is not None and self._signed[0] == data:
                signature = self._signed[1]
            elif self._signing == data:
                return  # being signed: signing_done() claims
            else:
                signature = self.signer(data)
                if signature is None:
                    # Deferred (a board signs in slices): no claim until
                    # signing_done(); a claim is never sent unsigned.
                    self._signing = data
                    return
        claim = wire.Claim(term=term, name=node.name, priority=node.priority,
                           incarnation=node.incarnation, signature=signature)
        old = self.leader
        self._follow(claim, now)
        node.send_to_all([self.claim_message])
        self.reassert_at = now + node.profile.claim_interval_ms
        node.emit(events.Elected(term=term))
        if old != node.name:
            node.emit(events.LeaderChanged(old=old, new=node.name, term=term))

    def _follow(self, claim, now):
        self.leader = claim.name
        self.leader_term = claim.term
        self.leader_priority = claim.priority
        self.leader_incarnation = claim.incarnation
        if claim.term > self.term:
            self.term = claim.term
        self.claim_message = wire.encode_message(claim)
        self.node.broadcasts.enqueue(_CLAIM_KEY, self.claim_message)

    def _drop_leader(self, now, resigned=False):
        old = self.leader
        self.settled_term = self.leader_term
        self.settled_claim = self.claim_message
        # A claim at exactly the settled term stays acceptable (the term a
        # node follows must not fall; it may stay): from the dropped leader
        # coming back, or from a rival of the same term. Not from a leader
        # that resigned it.
        self.resigned_leader = old if resigned else None
        self.leader = None
        self.claim_message = None
        self.node.broadcasts.remove(_CLAIM_KEY)
        self.node.emit(events.LeaderChanged(old=old, new=None, term=self.term))

    def receive_claim(self, claim, now):
        """Handles a claim from the network: verify, compare, follow or ignore."""
        node = self.node
        if claim.name == node.name:
            if self.leader == node.name or claim.term < self.term or claim.term >= _MAX_TERM:
                return
            # Others may follow a claim of ours from a past life (a restart).
            # Only a claim we really signed counts: anyone can put our name
            # on one, and adopting its term would let them inflate terms.
            reason = self._check(claim, True, own=True)
            if reason is not None:
                self._reject(claim, reason)
                return
            # Take the role back with a fresh term, or give it up.
            self.term = claim.term
            if self.can_lead():
                self._claim(now)
            else:
                self._send_resign(claim.term)
            return
        # The cheap comparisons first: a stale or repeated claim costs no
        # signature check (a board spends most of a second on one).
        new = (claim.term, claim.priority, claim.name)
        if self.leader is not None:
            current = (self.leader_term, self.leader_priority, self.leader)
            if new <= current:
                if new < current:
                    node.stats["claims_stale"] += 1
                    if self.leader == node.name:
                        # Tell the loser at once, so it steps down.
                        member = node.table.get(claim.name)
                        if member is not None:
                            node.send_to(member.address, [self.claim_message])
                return
        elif claim.term < self.settled_term or (
                claim.term == self.settled_term and claim.name == self.resigned_leader):
            node.stats["claims_stale"] += 1
            # A leader that never heard of the later term keeps asserting its
            # old one, which we may not follow (terms must not fall): show
            # it the later claim, so it claims above it (once per term).
            member = node.table.get(claim.name)
            if (self.settled_claim is not None and member is not None and member.is_live()
                    and self._hinted != (claim.name, claim.term)):
                self._hinted = (claim.name, claim.term)
                node.send_to(member.address, [self.settled_claim])
            return
        reason = self._check(claim, True)
        if reason == "not_member" and self.leader == node.name and claim.term >= self.term \
                and claim.term < _MAX_TERM - 1 and self._check(claim, True, own=True) is None:
            # A later term, validly signed, by a member we hold dead (a
            # hint sent by a node that cannot follow our older term): claim
            # above it, so everyone can follow us again.
            self.term = claim.term
            self._claim(now)
            return
        if reason is not None:
            self._reject(claim, reason)
            return
        was_leader = self.leader == node.name
        old = self.leader
        self._follow(claim, now)
        if was_leader:
            self.reassert_at = None
            node.emit(events.Demoted(term=claim.term, reason="outranked"))
        node.emit(events.LeaderChanged(old=old, new=claim.name, term=claim.term))

    def receive_resign(self, resign, now):
        """Handles a resignation: the leader of that term steps down."""
        if resign.name != self.leader or resign.term != self.leader_term or resign.name == self.node.name:
            return
        reason = self._check(resign, False)
        if reason is not None:
            self._reject(resign, reason)
            return
        self.node.broadcasts.enqueue(_CLAIM_KEY + "r", wire.encode_message(resign))
        self._drop_leader(now, resigned=True)

    def _check(self, msg, is_claim, own=False):
        """None if msg is acceptable, else the reason to reject it."""
        node = self.node
        if not own:
            member = node.table.get(msg.name)
            if member is None or not member.is_live():
                return "not_member"
        if self.insecure:
            return None
        key = self.trusted_keys.get(msg.name)
        if key is None:
            return "untrusted"
        if len(msg.signature) != wire.SIGNATURE_BYTES:
            return "unsigned"
        tag = node.codec.cluster_tag
        if is_claim:
            data = wire.claim_signed_bytes(tag, msg.term, msg.name, msg.priority, msg.incarnation)
        else:
            data = wire.resign_signed_bytes(tag, msg.term, msg.name)
        cache_key = data + msg.signature
        ok = self._verified.get(cache_key)
        if ok is None:
            if cache_key in self._pending:
                return "pending"
            if len(self._pending) >= _MAX_PENDING:
                # Checked before the verifier runs: a shell that defers
                # queues one job per call, so this bounds its queue too.
                # (A verifier that answers at once never leaves any pending.)
                return "busy"
            node.stats["signature_checks"] += 1
            try:
                ok = self.verifier(key, data, msg.signature)
            except Exception:
                ok = False
            if ok is None:
                # The shell verifies in slices (a board) and reports back
                # through verification_done(); the message waits for it.
                self._pending[cache_key] = msg
                return "pending"
            ok = bool(ok)
            self._remember(cache_key, ok)
        return None if ok else "bad_signature"

    def _remember(self, cache_key, ok):
        if len(self._verified) >= self._cache_size:
            self._verified = {}
        self._verified[cache_key] = ok

    def verification_done(self, data, signature, ok, now):
        """The result of a verification the verifier deferred (returned None)."""
        cache_key = data + signature
        msg = self._pending.pop(cache_key, None)
        self._remember(cache_key, bool(ok))
        if msg is None:
            return
        if msg.type_code == wire.T_CLAIM:
            self.receive_claim(msg, now)
        else:
            self.receive_resign(msg, now)

    def signing_done(self, data, signature, now):
        """The signature of claim bytes `data` that the signer deferred (returned None)."""
        if data != self._signing:
            return  # asked for a claim that no longer is the one to make
        self._signing = None
        self._signed = (data, signature)
        self.evaluate(now)

    def _reject(self, msg, reason):
        if reason == "pending":
            return
        key = "claims_rejected_" + reason
        self.node.stats[key] = self.node.stats.get(key, 0) + 1
        self.node.emit(events.ClaimRejected(name=msg.name, term=msg.term, reason=reason))

    # --- Resigning ------------------------------------------------------

    def _resign_message(self, term):
        node = self.node
        signature = b""
        if self.signer is not None:
            signature = self.signer(wire.resign_signed_bytes(node.codec.cluster_tag, term, node.name))
        return wire.encode_message(wire.Resign(term=term, name=node.name, signature=signature))

    def _send_resign(self, term):
        self.node.send_to_all([self._resign_message(term)])

    def claim_for_sync(self):
        """The accepted claim (encoded) to attach to a state sync, or None."""
        return self.claim_message

    def _resign(self, now, reason):
        term = self.leader_term
        message = self._resign_message(term)
        self.node.broadcasts.remove(_CLAIM_KEY)
        self.node.broadcasts.enqueue(_CLAIM_KEY + "r", message)
        self.settled_term = term
        self.resigned_leader = self.node.name
        self.leader = None
        self.claim_message = None
        self.reassert_at = None
        self.node.emit(events.Demoted(term=term, reason=reason))
        self.node.emit(events.LeaderChanged(old=self.node.name, new=None, term=term))
        return message

    def resign_for_leave(self, now):
        """The signed Resign to send with a graceful leave, or None if not leading."""
        if self.leader != self.node.name:
            return None
        return self._resign(now, "resigned")
