"""Leader election with signed, ever-growing terms (a fencing token).

Theory of operation
-------------------
The leader is the eligible live member with the highest rank, rank being
(priority, name): live means alive or suspect (one missed probe does not
move the role); eligible means priority > 0, the member's eligible flag set
(its health check passes) and, when a trust list is configured, a trusted
key under its name and that member's own signature over its metadata (a
trusted member's priority and eligibility are believed only as it signed
them: node.py merges no unsigned metadata about trusted names).

A node that finds itself in that place, once past its start-up hold-down,
claims term = (highest term it has seen) + 1: a Claim {cluster, term, name,
priority, incarnation, counter} signed with its Ed25519 key, sent at once
to every live member and gossiped on by each member that accepts it.

Leadership follows signatures, never gossip alone:
- The leader re-asserts its claim every claim_interval_ms as a heartbeat:
  the same term, the counter one higher, signed afresh. A follower drops a
  leader whose last verified heartbeat is older than leader_timeout_ms
  (_LEADER_TIMEOUT_INTERVALS intervals): a crashed leader, a paused one, or
  an impostor under its name that cannot sign. A recorded heartbeat cannot
  pass for a fresh one: its counter is not higher.
- Gossip saying the leader is dead does not drop it: node.py turns such news
  into a suspicion of its own, which ends in a death only after this node's
  own final probe went unanswered. A signed Resign or a signed Left drops it
  at once.
- Claims are compared by rank. A node following a live leader L switches to
  a claimant C only when C outranks L and claims a higher term (preemption,
  or the winner of a healed partition). A leader that hears a claim of a
  higher or equal term from a claimant it outranks claims again above it;
  one outranked by a claim of a lower term shows it its own claim, so the
  better one claims above both. So when two live leaders meet (a healed
  partition, a resumed leader), the followers of the better one never
  change, those of the other change once, and the final term is above both.
- A claim's term is believed only within _TERM_WINDOW above the highest term
  this node has seen, and a claim from a member this node holds dead is
  never out-claimed: the member is probed (it refutes if alive).

With `preempt`, a better candidate takes over once it has been alive,
joined and eligible for `preempt_delay_ms`; without, only when the leader
fails or resigns. A leader that leaves resigns first: a signed Resign for
its term, so the next node claims without waiting for failure detection.

Slow crypto (a board: most of a second for one Ed25519 operation) is
deferred, never done on the receive path: a verifier may return None and
report later through verification_done(); a signer may return None for a
claim and report through signing_done(), and the claim is made only then
(if it still is the one to make). Resignations are signed at once.

Signature checks (check(): claims, heartbeats, resignations, and node.py's
member statements) are bounded, since whoever holds the cluster key can
send signatures for nothing: each (bytes, signature) pair is checked once
(the verdict is cached); at most two claims a datagram are checked; after
a bad signature a (name, term) gets one more check per claim interval; and
checks are paid from a token bucket (refused as "busy" when it is empty:
the statement comes again with the next gossip or sync). The claims and
heartbeats of the leader followed and of the expected winner, and their
metadata, may take the bucket's last _RESERVE checks and two more pending
slots, so a flood of other signatures never starves them.
"""

from agent.core import events, wire
from agent.core.broadcast import retransmit_limit

try:
    from micropython import const
except ImportError:  # CPython: constants are plain ints
    def const(value):
        return value

# Broadcast-queue keys of the election: tuples, outside the member-name space.
_CLAIM_KEY = ("election", 0)
_MAX_TERM = 0xFFFFFFFF
# A claim more than this far above the highest term seen is not believed:
# honest clusters move one term per election, and a node that was away for
# 65,536 elections is not a case to design for; a forged (or buggy) claim
# cannot end the election by taking the term to its ceiling.
_TERM_WINDOW = const(1 << 16)
# A follower drops a leader whose last heartbeat is this many claim
# intervals old: two lost heartbeats in a row are not a failure.
_LEADER_TIMEOUT_INTERVALS = const(3)
# Checks a second (plus one per two live members; four seconds' worth at
# once) from the token bucket; the last _RESERVE of it only the urgent ones
# (the leader's, the expected winner's) may take.
_RATE = const(500)
_RESERVE = const(40)
# Checks that may wait for a deferring verifier (a board), and the small
# tables (hints sent, failures, reports) before they start afresh.
_MAX_PENDING = const(8)
_MAX_SEEN = const(64)
# Kinds of entry in Election._hinted (small ints: no names a board keeps).
_HINT = const(0)
_WAIT = const(1)
_FAIL = const(2)
_SAID = const(3)
_PASS = const(4)


class Election:
    """The election state of one node (owned and driven by Node)."""

    def __init__(self, name, profile, cluster_tag, table, live, broadcasts, stats, calls, now, signer=None,
                 verifier=None, trusted_keys=None, preempt=True, preempt_delay_ms=5000, cache_size=None,
                 member_checks=True):
        # What it works with, never the node itself: its own name, profile
        # and cluster tag (for the signed bytes), the member table and the
        # live names (read only), the broadcast queue its claims ride on,
        # the counters, and, as callables (see Node): send(addr, messages)
        # and emit(event), the node's way out, and three questions only the
        # node can answer: alive_message(), waiting_for_seeds() and
        # tell_dead(member, addr, now). The node's own priority, incarnation
        # and operator eligibility come in through set_local() whenever
        # they change.
        self.name = name
        self.profile = profile
        self.cluster_tag = cluster_tag
        self.table = table
        self.live = live
        self.broadcasts = broadcasts
        self.stats = stats
        self._send, self._emit, self._alive_message, self._waiting_for_seeds, self._tell_dead = calls
        self.member_checks = member_checks
        self.priority = 0
        self.incarnation = 0
        self.user_eligible = True
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
        self.leader_counter = 0       # the last heartbeat's counter
        self.leader_seen_at = None    # when its last heartbeat was verified
        self._awaiting = None         # (candidate, since) while we wait for its claim
        self._rival = None            # the latest claim refused for our leader's rank
        self.settled_term = 0         # claims below this term are stale...
        self.resigned_leader = None   # ...and this one's at exactly that term
        self.settled_leader = None    # the leader dropped: its spent heartbeats are stale too
        self.settled_claim = None     # the claim we dropped, encoded (a hint for stale leaders)
        self.handover = None          # (successor, term) of the signed hand-over in force (transfer)
        self.claim_message = None     # the accepted claim (its latest heartbeat), encoded
        self.reassert_at = None
        self.wake_at = None           # hold-down or preempt delay ends
        self.candidate_since = None   # since when this node can lead (joined, eligible)
        self._signing = None          # claim bytes a deferring signer is signing
        self._signed = None           # (claim bytes, signature) it gave back
        # (_HINT, name, term): a rival shown our claim; (_WAIT, name, term):
        # a check deferred; (_FAIL, name, term) / (_SAID, name): when a check
        # failed / a rejection was last reported; (_PASS, name): the
        # incarnation at which a candidate that never claimed was passed over.
        self._hinted = {}
        self._checks_left = 2         # claims this datagram may still have checked
        self._verified = {}           # bytes + signature -> verdict
        self._pending = {}            # bytes + signature -> what waits for the check
        self._cache_size = cache_size or 64
        # The token bucket, in milli-checks: [level, last refill].
        self._budget = [_RATE * 4000, now]
        # Best (priority, name) among the other members, cached: the table
        # can hold a thousand members and changes arrive one at a time.
        self._others_key = None
        self._others_valid = False

    def set_local(self, priority, incarnation, user_eligible):
        """The node's own priority, incarnation and operator eligibility, as they are now."""
        self.priority = priority
        self.incarnation = incarnation
        self.user_eligible = user_eligible

    def _send_to_all(self, messages):
        # To every live member directly (send fills in updates).
        for name in self.live.names:
            self._send(self.table.get(name).address, messages)

    # --- The rule -------------------------------------------------------

    def can_lead(self):
        """Whether this node may claim: priority > 0, eligible, able to sign."""
        if self.priority == 0 or not self.user_eligible:
            return False
        if self.insecure:
            return True
        return self.signer is not None and self.name in self.trusted_keys

    def _eligible(self, member):
        if member.priority == 0 or not member.eligible or not member.is_live():
            return False
        if self._hinted.get((_PASS, member.name)) == member.incarnation:
            return False  # passed over: it never claimed (see evaluate)
        return self.insecure or (member.name in self.trusted_keys and len(member.signature) > 0)

    def candidate(self):
        """The name of the best eligible live member (this node included), or None."""
        best = None
        best_key = None
        if self.can_lead():
            best = self.name
            best_key = (self.priority, self.name)
        if not self._others_valid:
            self._scan_others()
        if self._others_key is not None and (best_key is None or self._others_key > best_key):
            best = self._others_key[1]
        return best

    def _scan_others(self):
        best_key = None
        for member in self.table.members.values():
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
        """Call after replacing trusted_keys or the verifier (the eligible set may change)."""
        self.insecure = self.trusted_keys is None
        self._others_valid = False

    # --- Evaluation -----------------------------------------------------

    def evaluate(self, now):
        """Re-applies the rule after a change of membership, eligibility or time."""
        self.wake_at = None
        if self.leader is not None and self.leader != self.name:
            member = self.table.get(self.leader)
            if member is None or not member.is_live():
                # Only a death this node saw for itself, or a signed Left:
                # node.py never lets gossip alone bury the leader it follows.
                self._drop_leader(now)
            elif not self._eligible(member) and member.incarnation > self.leader_incarnation:
                # Its own signed metadata, newer than its heartbeat, says it
                # cannot lead any more (metadata older than the heartbeat is
                # no reason: the heartbeat says it was eligible later).
                self._drop_leader(now)
            elif now - self.leader_seen_at >= _LEADER_TIMEOUT_INTERVALS * self.profile.claim_interval_ms:
                # No fresh signed heartbeat: crashed, paused, or an impostor
                # under its name that answers probes but cannot sign.
                self._drop_leader(now)
        if self.leader == self.name and not self.can_lead():
            # Tell everyone at once, with our new metadata, so the next
            # candidate claims without waiting for gossip.
            self._send_to_all([self._alive_message(), self._resign(now, "ineligible")])
        if self.can_lead() and not self._waiting_for_seeds():
            if self.candidate_since is None:
                self.candidate_since = now
        else:
            self.candidate_since = None
        if self.leader is not None and self.leader != self.name:
            self.wake_at = self.leader_seen_at + _LEADER_TIMEOUT_INTERVALS * self.profile.claim_interval_ms
        if self.leader == self.name:
            return
        if self.leader is None and self.handover is not None and self._hand_over(now):
            return
        best = self.candidate()
        if best != self.name:
            if self.leader is None and best is not None:
                self._await(best, now)
            return
        # The hold-down grows with the cluster (log10 n), as convergence does.
        n = self.table.live_count + 1
        holddown = self.profile.startup_holddown_ms
        if n > 10:
            holddown = holddown * (len(str(n)) - 1)
        ready_at = self.started_ms + holddown
        if self._waiting_for_seeds():
            ready_at = None
        if self.leader is None:
            if ready_at is not None and now >= ready_at:
                self._claim(now, self.term + 1)
            elif ready_at is not None and (self.wake_at is None or ready_at < self.wake_at):
                self.wake_at = ready_at
            return
        if self.preempt and ready_at is not None and self.candidate_since is not None \
                and (self.handover is None or self.handover[0] != self.leader) \
                and (self.priority, self.name) > (self._leader_priority_now(), self.leader):
            # The delay counts from when this node could lead (alive, joined,
            # eligible), not from its start: one that comes back after a
            # pause, a partition or a failed health check waits it again.
            at = self.candidate_since + self.preempt_delay_ms
            if ready_at > at:
                at = ready_at
            if now >= at:
                self._claim(now, self.term + 1)
            elif self.wake_at is None or at < self.wake_at:
                self.wake_at = at

    def _hand_over(self, now):
        # No leader after a signed hand-over (transfer): its successor claims
        # at once, whatever its rank, and every other node waits for that
        # claim (_await: one that never comes is passed over, and the rule
        # elects as usual). True if that is what happens.
        successor = self.handover[0]
        if successor == self.name:
            if self.can_lead() and not self._waiting_for_seeds():
                self._claim(now, self.term + 1)
                return True
        else:
            member = self.table.get(successor)
            if member is not None and self._eligible(member):
                self._await(successor, now)
                return True
        self.handover = None
        return False

    def _await(self, best, now):
        # No leader, and the best candidate is another member: it should
        # claim within its hold-down. One that does not in a leader timeout
        # (an impostor under a trusted name answers probes but cannot sign)
        # is passed over until it claims or signs new metadata.
        timeout = _LEADER_TIMEOUT_INTERVALS * self.profile.claim_interval_ms
        if self._awaiting is None or self._awaiting[0] != best:
            self._awaiting = (best, now)
        elif now - self._awaiting[1] >= timeout:
            self._note((_PASS, best), self.table.get(best).incarnation)
            self._others_valid = False
            self._awaiting = None
            self.evaluate(now)
            return
        at = self._awaiting[1] + timeout
        if self.wake_at is None or at < self.wake_at:
            self.wake_at = at

    def _leader_priority_now(self):
        """The leader's priority: from its member entry, unless the heartbeat is newer."""
        member = self.table.get(self.leader)
        if member is not None and member.incarnation > self.leader_incarnation \
                and (self.insecure or len(member.signature) > 0):
            return member.priority
        return self.leader_priority

    def get_timer(self):
        """The earliest election deadline, or None."""
        t = self.wake_at
        if self.reassert_at is not None and (t is None or self.reassert_at < t):
            t = self.reassert_at
        return t

    def handle_timer(self, now):
        """Sends the heartbeat when due and re-evaluates after a hold-down or timeout."""
        if self.reassert_at is not None and now >= self.reassert_at:
            self.reassert_at = now + self.profile.claim_interval_ms
            if self.leader == self.name:
                self.heartbeat(now)
        if self.wake_at is not None and now >= self.wake_at:
            self.evaluate(now)

    def heartbeat(self, now):
        """As leader: re-asserts the claim at once, counter one higher, signed afresh."""
        if self.leader != self.name or self.leader_counter >= _MAX_TERM:
            return
        if self.term > self.leader_term:
            # A later term was proved to us while we led (above): lead above it.
            self._claim(now, self.term + 1)
            return
        self._claim(now, self.leader_term, self.leader_counter + 1)

    # --- Claims ---------------------------------------------------------

    def _claim(self, now, term, counter=0):
        if term >= _MAX_TERM:
            return  # terms exhausted (2^32 - 1): only forged claims get here
        signature = b""
        if self.signer is not None:
            data = wire.claim_signed_bytes(self.cluster_tag, term, self.name, self.priority,
                                           self.incarnation, counter)
            if self._signed is not None and self._signed[0] == data:
                signature = self._signed[1]
            elif self._signing == data:
                return  # being signed: signing_done() claims
            else:
                signature = self.signer(data, True)
                if signature is None:
                    # Deferred (a board signs in slices): no claim until
                    # signing_done(); a claim is never sent unsigned.
                    self._signing = data
                    return
        claim = wire.Claim(term=term, name=self.name, priority=self.priority,
                           incarnation=self.incarnation, counter=counter, signature=signature)
        old = self.leader
        old_term = self.leader_term
        self._follow(claim, now)
        if counter == 0:
            self._send_to_all([self.claim_message])
            self.reassert_at = now + self.profile.claim_interval_ms
        if old != self.name or old_term != term:
            self._emit(events.Elected(term=term))
            self._emit(events.LeaderChanged(old=old, new=self.name, term=term))

    def _follow(self, claim, now):
        self._awaiting = None
        if self._rival is not None and self._rival.term <= claim.term:
            self._rival = None
        self._hinted.pop((_PASS, claim.name), None)
        if self.handover is not None and self.handover[0] != claim.name:
            self.handover = None
        self.leader = claim.name
        self.leader_term = claim.term
        self.leader_priority = claim.priority
        self.leader_incarnation = claim.incarnation
        self.leader_counter = claim.counter
        self.leader_seen_at = now
        if claim.term > self.term:
            self.term = claim.term
        self.claim_message = wire.encode_message(claim)
        spent = 0
        if claim.counter > 0 and claim.name != self.name:
            # A heartbeat relayed by a follower: retransmit_mult times, not
            # retransmit_mult * log10(n): the next one comes in a claim
            # interval, and a follower drops the leader only after three
            # missed (the leader itself, and every state sync, carry it too).
            spent = retransmit_limit(self.profile.retransmit_mult, self.table.live_count + 1) - self.profile.retransmit_mult
        self.broadcasts.enqueue(_CLAIM_KEY, self.claim_message, spent)

    def _drop_leader(self, now, resigned=False):
        old = self.leader
        self.settled_term = self.leader_term
        # (leader_counter stays: its heartbeats up to that one are spent, and
        # a recorded one, from a sync still carrying it or a replay, does
        # not bring it back.)
        self.settled_claim = self.claim_message
        # A claim at exactly the settled term stays acceptable (the term a
        # node follows must not fall; it may stay): from the dropped leader
        # coming back, or from a rival of the same term. Not from a leader
        # that resigned it.
        self.resigned_leader = old if resigned else None
        self.settled_leader = old
        self.leader = None
        self.claim_message = None
        self.leader_seen_at = None
        self.broadcasts.remove(_CLAIM_KEY)
        self.handover = None
        self._emit(events.LeaderChanged(old=old, new=None, term=self.term))
        rival = self._rival
        if rival is not None:
            self._rival = None
            if rival.name != old:
                self._checks_left = 2
                self.receive_claim(rival, now)

    def datagram_started(self):
        """Call before the claims of each datagram: at most two of them are checked."""
        self._checks_left = 2

    def receive_claim(self, claim, now):
        """Handles a claim (or heartbeat) from the network: compare, verify, follow or ignore."""
        if claim.term > self.term + _TERM_WINDOW and self.term > 0:
            self._reject(claim, "term_window", now)
            return
        if claim.name == self.name:
            self._own_claim(claim, now)
            return
        # The cheap comparisons first: a stale or repeated claim costs no
        # signature check (a board spends most of a second on one).
        if claim.name == self.leader:
            if claim.term < self.leader_term or (claim.term == self.leader_term
                                                 and claim.counter <= self.leader_counter):
                return  # a repeat or a replay: nothing new
            if claim.term == self.leader_term and not self.member_checks \
                    and 2 * (now - self.leader_seen_at) < 3 * self.profile.claim_interval_ms:
                # A board (member_checks off) checks the first heartbeat that
                # comes 1.5 claim intervals after the last one it verified:
                # every other one, half the checks at most a second each,
                # and no later than a server would drop the leader.
                return
            if self._check(claim, now, urgent=True) is not None:
                return
            old_term = self.leader_term
            self._follow(claim, now)
            if claim.term != old_term:
                self._emit(events.LeaderChanged(old=claim.name, new=claim.name, term=claim.term))
            return
        if self.leader is not None:
            self._claim_while_led(claim, now)
            return
        if claim.term < self.settled_term or (claim.term == self.settled_term and (
                claim.name == self.resigned_leader
                or (claim.name == self.settled_leader and claim.counter <= self.leader_counter))):
            self.stats["claims_stale"] += 1
            # A leader that never heard of the later term keeps asserting its
            # old one, which we may not follow (terms must not fall): show
            # it the later claim, so it claims above it (once per term).
            self._hint(claim, self.settled_claim, now)
            return
        if self._check(claim, now, urgent=claim.name == self.candidate()) is not None:
            return
        self._follow(claim, now)
        self._emit(events.LeaderChanged(old=None, new=claim.name, term=claim.term))

    def _claim_while_led(self, claim, now):
        leading = self.leader == self.name
        rank = (claim.priority, claim.name)
        leader_rank = (self.priority, self.name) if leading else (self._leader_priority_now(), self.leader)
        if rank > leader_rank and claim.term > self.leader_term:
            member = self.table.get(claim.name)
            if leading and (member is None or not member.is_live()
                            or (not self._eligible(member) and member.incarnation > claim.incarnation)):
                # A later term from a claimant that cannot lead now: one we
                # hold dead, or that has since signed itself ineligible (a
                # hint: another node followed it, then lost it). Its term is
                # history, signed, so we must lead above it (fencing tokens
                # only grow), but not at once: one alive refutes its death
                # first, and is followed. Adopted now; our next heartbeat
                # claims above it (a claim interval, never a claim war).
                if self._check(claim, now, urgent=True, own=True) is None:
                    if claim.term > self.term:
                        self.term = claim.term
                    if member is not None and not member.is_live():
                        self._tell_dead(member, member.address, now)
                return
            # A better claimant with a later term: preemption, or the winner
            # of a healed partition. (Its priority is signed in the claim.)
            if self._check(claim, now, urgent=True) is not None:
                return
            old = self.leader
            self._follow(claim, now)
            if leading:
                self.reassert_at = None
                self._emit(events.Demoted(term=claim.term, reason="outranked"))
            self._emit(events.LeaderChanged(old=old, new=claim.name, term=claim.term))
            return
        self.stats["claims_stale"] += 1
        if leading and rank < leader_rank and claim.term >= self.leader_term and self.can_lead():
            # A rival we outrank, at a term not below ours (the other side
            # of a healed partition, or a hint of a later term): claim above
            # it, once its claim is proved (a forged claim must not move our
            # term), even if we hold the rival dead: rank decides, so it
            # follows us and no claim war can start.
            if self._check(claim, now, urgent=True, own=True) is not None:
                return
            if claim.term > self.term:
                self.term = claim.term
            self._claim(now, self.term + 1)
            return
        # A rival that has not heard of our leader: show it our leader's
        # claim (once per rival and term), so it steps down or claims above.
        # Kept: if we drop our leader soon after (its crash, which the rival
        # saw first), the rival's claim is followed at once, not at its next
        # heartbeat.
        if not leading and claim.term > self.leader_term and (self._rival is None or claim.term >= self._rival.term):
            self._rival = claim
        self._hint(claim, self.claim_message, now)

    def _hint(self, claim, message, now):
        member = self.table.get(claim.name)
        if message is None or member is None or not member.is_live():
            return
        # Once per rival and term, and again every few claim intervals while
        # it keeps asserting that term (a hint lost in a partition, or sent
        # before the rival could act on it, is not the last).
        key = (_HINT, claim.name, claim.term)
        sent = self._hinted.get(key)
        if sent is None or now - sent >= _LEADER_TIMEOUT_INTERVALS * self.profile.claim_interval_ms:
            self._note(key, now)
            self._send(member.address, [message])

    def _note(self, key, value):
        if len(self._hinted) >= _MAX_SEEN:
            self._hinted = {}
        self._hinted[key] = value

    def _own_claim(self, claim, now):
        """A claim under our own name: from a past life (a restart), or forged."""
        if self.leader == self.name or claim.term < self.term or claim.term >= _MAX_TERM - 1:
            return
        if self.resigned_leader == self.name and claim.term <= self.settled_term:
            return  # a late copy of a heartbeat from before we resigned (or handed over) that term
        # Others may follow a claim of ours from a past life. Only a claim we
        # really signed counts: anyone can put our name on one, and adopting
        # its term would let them inflate terms.
        if self._check(claim, now, own=True) is not None:
            return
        # Take the role back with a fresh term, or give it up.
        self.term = claim.term
        if self.can_lead():
            self._claim(now, self.term + 1)
        else:
            self._send_to_all([self._resign_message(claim.term)])

    def receive_resign(self, resign, now):
        """Handles a resignation or a hand-over: the leader of that term steps down (for a successor)."""
        if resign.name != self.leader or resign.term != self.leader_term or resign.name == self.name:
            return
        if self._check(resign, now, urgent=True) is not None:
            return
        self.broadcasts.enqueue(("election", 1), wire.encode_message(resign))
        self._drop_leader(now, resigned=True)
        if resign.type_code == wire.T_HANDOVER:
            self.handover = (resign.successor, resign.term)

    def _check(self, msg, now, urgent=False, own=False):
        """None if msg (a Claim or Resign) is acceptable, else the reason it is not (counted)."""
        reason = self._verdict(msg, now, urgent, own)
        if reason is not None:
            self._reject(msg, reason, now)
        return reason

    def _verdict(self, msg, now, urgent, own):
        if not own:
            member = self.table.get(msg.name)
            if member is None or not member.is_live():
                # Never out-claimed, never followed while we hold it dead:
                # probed, so that if it lives it refutes and is followed.
                if member is not None:
                    self._tell_dead(member, member.address, now)
                return "not_member"
        if self.insecure:
            return None
        if msg.type_code == wire.T_CLAIM:
            data = wire.claim_signed_bytes(self.cluster_tag, msg.term, msg.name, msg.priority,
                                           msg.incarnation, msg.counter)
        else:
            data = wire.resign_signed_bytes(self.cluster_tag, msg.term, msg.name,
                                            msg.successor if msg.type_code == wire.T_HANDOVER else None)
        if data + msg.signature not in self._verified:
            if (_WAIT, msg.name, msg.term) in self._hinted:
                # One check at a time per (name, term): the next heartbeat
                # is asked for once this one is decided.
                return "pending"
            failed = self._hinted.get((_FAIL, msg.name, msg.term))
            if failed is not None and now - failed < self.profile.claim_interval_ms and msg.name != self.leader:
                return "busy"
            if self._checks_left <= 0:
                return "busy"
            self._checks_left -= 1
        reason = self.check(msg.name, data, msg.signature, msg, now, urgent)
        if reason == "pending":
            self._note((_WAIT, msg.name, msg.term), True)
        elif reason == "bad_signature":
            self._note((_FAIL, msg.name, msg.term), now)
        return reason

    def check(self, name, data, signature, msg, now, urgent=False):
        """Checks `name`'s signature over `data`: None if good, else "bad_signature", "untrusted",
        "unsigned", "busy" (no budget left) or "pending" (deferred: token comes back from
        verification_done: msg, what waits)."""
        key = self.trusted_keys.get(name) if self.trusted_keys is not None else None
        if key is None:
            return "untrusted"
        if len(signature) != wire.SIGNATURE_BYTES:
            return "unsigned"
        cache_key = data + signature
        ok = self._verified.get(cache_key)
        if ok is None:
            if cache_key in self._pending:
                return "pending"
            # Checked before the verifier runs: a shell that defers queues
            # one job per call, so this bounds its queue too.
            # The bucket grows with the cluster: a node that joins N members
            # checks N statements at once, and one a second per member or so
            # after (refutations, changes of priority).
            bucket = self._budget
            rate = _RATE + (self.table.live_count + 1) // 2
            if now > bucket[1]:
                bucket[0] = min(bucket[0] + (now - bucket[1]) * rate, rate * 4000)
                bucket[1] = now
            if len(self._pending) >= _MAX_PENDING + (2 if urgent else 0) \
                    or bucket[0] < (1000 if urgent else 1000 + _RESERVE * 1000):
                return "busy"
            bucket[0] -= 1000
            self.stats["signature_checks"] += 1
            try:
                ok = self.verifier(key, data, signature)
            except Exception:
                ok = False
            if ok is None:
                # The shell verifies in slices (a board) and reports back
                # through verification_done(); the statement waits for it.
                self._pending[cache_key] = msg
                return "pending"
            ok = bool(ok)
            if not ok or name != self.leader:
                # (The heartbeats of the leader followed are not kept: each
                # comes once, a repeat is stale by its counter before any
                # check, and a board keeps ~170 bytes fewer per heartbeat.)
                self._remember(cache_key, ok)
        return None if ok else "bad_signature"

    def _remember(self, cache_key, ok):
        if len(self._verified) >= self._cache_size:
            self._verified = {}
        self._verified[cache_key] = ok

    def verification_done(self, data, signature, ok, now):
        """Records the result of a deferred check; returns the node's token that waited, if any."""
        cache_key = data + signature
        self._remember(cache_key, bool(ok))
        msg = self._pending.pop(cache_key, None)
        if msg is None or isinstance(msg, tuple):
            return msg
        self._hinted.pop((_WAIT, msg.name, msg.term), None)
        if not ok:
            self._note((_FAIL, msg.name, msg.term), now)
        self._checks_left = 2
        if msg.type_code == wire.T_CLAIM:
            self.receive_claim(msg, now)
            if ok and msg.name == self.leader:
                self._verified.pop(cache_key, None)  # kept for its processing only (see check)
        else:
            self.receive_resign(msg, now)
        return None

    def signing_done(self, data, signature, now):
        """The signature of claim bytes `data` that the signer deferred (returned None)."""
        if data != self._signing:
            return  # asked for a claim that no longer is the one to make
        self._signing = None
        self._signed = (data, signature)
        if self.leader == self.name:
            self._claim(now, self.leader_term, self.leader_counter + 1)  # a heartbeat
        else:
            self.evaluate(now)

    def _reject(self, msg, reason, now):
        if reason == "pending":
            return
        stats = self.stats
        key = "claims_rejected_" + reason
        stats[key] = stats.get(key, 0) + 1
        # Reported (and so logged) at most once per claimant per claim
        # interval; every rejection is counted.
        last = self._hinted.get((_SAID, msg.name))
        if last is not None and now - last < self.profile.claim_interval_ms:
            return
        self._note((_SAID, msg.name), now)
        self._emit(events.ClaimRejected(name=msg.name, term=msg.term, reason=reason))

    # --- Resigning ------------------------------------------------------

    def _resign_message(self, term, successor=None):
        # A Resign, or with a successor a Handover (transfer).
        signature = b""
        if self.signer is not None:
            signature = self.signer(wire.resign_signed_bytes(self.cluster_tag, term, self.name, successor), False)
        if successor is None:
            return wire.encode_message(wire.Resign(term=term, name=self.name, signature=signature))
        return wire.encode_message(wire.Handover(term=term, name=self.name, successor=successor,
                                                 signature=signature))

    def claim_for_sync(self):
        """The accepted claim (its latest heartbeat, encoded) to attach to a state sync, or None."""
        return self.claim_message

    def _resign(self, now, reason, successor=None):
        term = self.leader_term
        message = self._resign_message(term, successor)
        self.broadcasts.remove(_CLAIM_KEY)
        self.broadcasts.enqueue(("election", 1), message)
        self.settled_term = term
        # Our own claim is what we show a leader of a lower term (_hint): the
        # proof that this term was led, so it leads above it.
        self.settled_claim = self.claim_message
        self.settled_leader = self.name
        self.resigned_leader = self.name
        self.leader = None
        self.claim_message = None
        self.reassert_at = None
        self._emit(events.Demoted(term=term, reason=reason))
        self._emit(events.LeaderChanged(old=self.name, new=None, term=term))
        return message

    def successor(self, name=None):
        """As leader: the member a transfer would hand the role to, `name` or (None) the next in
        rank; raises ValueError saying why there is none."""
        if self.leader != self.name:
            raise ValueError("this node does not lead; " + ("the leader is %s: run transfer there" % self.leader
                                                             if self.leader is not None else "no node leads now"))
        if name is None:
            self._others_valid = False
            self._scan_others()
            if self._others_key is None:
                raise ValueError("no other member can lead now (alive, eligible, priority above 0, trusted)")
            return self._others_key[1]
        if name == self.name:
            raise ValueError("%s is this node, which leads already" % name)
        member = self.table.get(name)
        if member is None:
            raise ValueError("%s is not a member this node knows" % name)
        if member.state != wire.STATE_ALIVE:
            raise ValueError("%s is %s, not alive" % (name, wire.STATE_NAMES[member.state]))
        if not self.insecure and name not in self.trusted_keys:
            raise ValueError("%s is not in the trust list (election.trusted_keys)" % name)
        if not self._eligible(member):
            raise ValueError("%s is not eligible to lead (priority 0, maintenance, a failing health check, "
                             "or no signing key)" % name)
        return name

    def transfer(self, name, now):
        """As leader: hands the role to `name` (successor() checks it) at once, with a signed
        Handover that tells every node to wait for its claim; returns the successor's name."""
        name = self.successor(name)
        term = self.leader_term
        self._send_to_all([self._resign(now, "transfer", name)])
        self.handover = (name, term)
        self.evaluate(now)
        return name

    def resign_for_leave(self, now):
        """The signed Resign to send with a graceful leave, or None if not leading."""
        if self.leader != self.name:
            return None
        return self._resign(now, "resigned")
