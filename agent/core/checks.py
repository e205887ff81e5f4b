"""Signature checks: cached, budgeted and deferrable, for everything the core verifies.

Theory of operation
-------------------
An Ed25519 check costs ~70 us on a server and most of a second on a board,
and whoever holds the cluster key can send signatures for nothing. So every
check the core makes goes through one SignatureChecks:

- Each (signed bytes, signature) pair is checked at most once: the verdict
  is cached (bounded: the cache starts afresh when full).
- Checks are paid from a token bucket (`rate_per_s`, burst `burst`); when it
  is empty the check is refused ("busy") and the statement is dropped, to
  come again with the next gossip or sync. Urgent checks (the claims and
  heartbeats of the leader this node follows, and of the candidate it
  expects to win) draw on a bucket of their own, so a flood of other
  signatures never starves them.
- A verifier may defer (return None: a board checks in slices between
  which it keeps answering pings); the statement waits, at most
  `max_pending` of them (urgent ones have two slots of their own), and
  comes back through done().

Verdicts: OK, BAD, PENDING (deferred, or already waiting), BUSY (refused).
"""

OK = 1
BAD = 0
PENDING = 2
BUSY = 3

_URGENT_SLOTS = 2


class _Bucket:
    """A token bucket in integer milli-tokens (no floats on boards)."""

    def __init__(self, rate_per_s, burst, now):
        self.rate = rate_per_s
        self.burst_mt = burst * 1000
        self.level_mt = self.burst_mt
        self.at = now

    def take(self, now):
        elapsed = now - self.at
        if elapsed > 0:
            self.level_mt += elapsed * self.rate
            if self.level_mt > self.burst_mt:
                self.level_mt = self.burst_mt
            self.at = now
        if self.level_mt < 1000:
            return False
        self.level_mt -= 1000
        return True


class SignatureChecks:
    """Every signature check of one node: cache, budget, deferral (see the module doc)."""

    def __init__(self, verifier, now, cache_size=64, max_pending=8, rate_per_s=500, burst=1000,
                 urgent_rate_per_s=20, urgent_burst=40):
        self.verifier = verifier
        self.cache_size = cache_size
        self.max_pending = max_pending
        self.checks = 0        # verifier calls
        self.refused = 0       # refused for want of budget or pending slots
        self._verified = {}
        self._pending = {}
        self._bucket = _Bucket(rate_per_s, burst, now)
        self._urgent = _Bucket(urgent_rate_per_s, urgent_burst, now)

    def cached(self, data, signature):
        """The cached verdict (OK or BAD) of this pair, or None."""
        ok = self._verified.get(data + signature)
        if ok is None:
            return None
        return OK if ok else BAD

    def check(self, public_key, data, signature, token, now, urgent=False):
        """The verdict on `signature` over `data` by `public_key` (module doc).

        token: what to hand back from done() when a deferred check finishes
        (the caller's note of what the signature was for).
        """
        cache_key = data + signature
        ok = self._verified.get(cache_key)
        if ok is not None:
            return OK if ok else BAD
        if cache_key in self._pending:
            return PENDING
        if self.verifier is None:
            return BAD
        limit = self.max_pending + (_URGENT_SLOTS if urgent else 0)
        if len(self._pending) >= limit:
            # Checked before the verifier runs: a shell that defers queues
            # one job per call, so this bounds its queue too.
            self.refused += 1
            return BUSY
        if not (self._urgent if urgent else self._bucket).take(now):
            self.refused += 1
            return BUSY
        self.checks += 1
        try:
            ok = self.verifier(public_key, data, signature)
        except Exception:
            ok = False
        if ok is None:
            self._pending[cache_key] = token
            return PENDING
        ok = bool(ok)
        self._remember(cache_key, ok)
        return OK if ok else BAD

    def _remember(self, cache_key, ok):
        if len(self._verified) >= self.cache_size:
            self._verified = {}
        self._verified[cache_key] = ok

    def done(self, data, signature, ok):
        """Records a deferred verdict; returns the token of the statement that waited, or None."""
        cache_key = data + signature
        self._remember(cache_key, bool(ok))
        return self._pending.pop(cache_key, None)

    def pending_count(self):
        """Checks deferred and not yet done."""
        return len(self._pending)
