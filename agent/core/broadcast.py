"""The transmit-limited broadcast queue: updates piggybacked on outgoing datagrams.

Theory of operation. Every update this node disseminates (a member's state,
an election claim) is an already-encoded payload queued under a key naming
its subject. Each outgoing datagram carries as many payloads as fit, chosen
by the fewest transmissions so far and, among equals, the newest first; each
chosen payload's count goes up, and a payload sent retransmit_limit times
(retransmit_mult * ceil(log10(n + 1))) is dropped: by then gossip has spread
it to everyone with high probability. A newer update about the same subject
replaces the old one, which is never sent again.
(memberlist queue.go TransmitLimitedQueue semantics; our own structure.)

Structure. Entries are [seq, key, payload, transmits] lists; seq comes from
a counter, so "newest" never depends on dict order (which differs on
MicroPython). Entries sit in buckets by transmit count, each bucket a list
sorted by seq, newest at the end. A call walks the buckets from the lowest
count up and each bucket from its end, so it touches only the entries it
takes plus a bounded number it skips, never sorting the whole queue.
"""

try:
    from micropython import const
except ImportError:  # CPython: constants are plain ints
    def const(value):
        return value

# Index of each field in an entry list.
_SEQ = const(0)
_KEY = const(1)
_PAYLOAD = const(2)
_TRANSMITS = const(3)

# Payloads too large for the space left, skipped in one call before it gives
# up looking for smaller ones further down the queue.
DEFAULT_MAX_SKIPS = 32


def retransmit_limit(retransmit_mult, n_members):
    """Transmissions of one update: retransmit_mult * ceil(log10(n_members + 1)), at least mult."""
    # ceil(log10(n + 1)) is the count of decimal digits of n for n >= 1;
    # integer maths avoids float error at powers of ten. n = 0 counts as 1.
    digits = 1
    bound = 10
    while n_members >= bound:
        digits += 1
        bound *= 10
    return retransmit_mult * digits


def _find(bucket, seq):
    # Index of the entry with this seq in a bucket sorted by seq, or of the
    # first entry with a larger seq (where it would be inserted).
    lo = 0
    hi = len(bucket)
    while lo < hi:
        mid = (lo + hi) >> 1
        if bucket[mid][_SEQ] < seq:
            lo = mid + 1
        else:
            hi = mid
    return lo


class BroadcastQueue:
    """Pending broadcast payloads by key, handed out by fewest transmissions, newest first."""

    def __init__(self, max_skips=DEFAULT_MAX_SKIPS):
        # key -> entry; looked up only, never iterated for ordering.
        self._by_key = {}
        # transmit count -> list of entries sorted by seq (newest at the end).
        self._buckets = {}
        self._seq = 0
        self.max_skips = max_skips

    def __len__(self):
        return len(self._by_key)

    def enqueue(self, key, payload, transmits=0):
        """Queues `payload` (bytes) under `key`, replacing any pending one for that key.

        transmits: transmissions to count as done already, for an update that
        needs fewer than the limit (it is also handed out after the fresher
        ones): the leader's heartbeats, relayed by followers, come again in a
        claim interval.
        """
        old = self._by_key.get(key)
        if old is not None:
            self._unlink(old)
        self._seq += 1
        entry = [self._seq, key, payload, transmits]
        self._by_key[key] = entry
        bucket = self._buckets.get(transmits)
        if bucket is None:
            self._buckets[transmits] = [entry]
        else:
            # The newest seq of all: appending keeps the bucket sorted.
            bucket.append(entry)

    def pending_for(self, key):
        """The payload pending under `key`, or None."""
        entry = self._by_key.get(key)
        if entry is None:
            return None
        return entry[_PAYLOAD]

    def transmits_for(self, key):
        """How many times the payload pending under `key` was handed out, or None."""
        entry = self._by_key.get(key)
        if entry is None:
            return None
        return entry[_TRANSMITS]

    def remove(self, key):
        """Drops the payload pending under `key`; True if there was one."""
        entry = self._by_key.get(key)
        if entry is None:
            return False
        self._unlink(entry)
        del self._by_key[key]
        return True

    def clear(self):
        """Drops every pending payload."""
        self._by_key = {}
        self._buckets = {}

    def get_broadcasts(self, limit_bytes, n_members, retransmit_mult, overhead_bytes=0):
        """Payloads to piggyback, at most limit_bytes in all (each costing overhead_bytes more).

        Takes the fewest-transmitted first, newest first among equals; skips
        those that do not fit (up to max_skips of them) so smaller ones may
        still be taken. Counts a transmission for each one returned and drops
        those that reach retransmit_limit(retransmit_mult, n_members).
        """
        buckets = self._buckets
        if not buckets or limit_bytes <= overhead_bytes:
            return []
        limit = retransmit_limit(retransmit_mult, n_members)
        remaining = limit_bytes
        skips = 0
        out = []
        taken = []
        # A few counts only (at most the retransmit limit), so sorting the keys is cheap.
        for count in sorted(buckets):
            bucket = buckets[count]
            i = len(bucket) - 1
            while i >= 0:
                entry = bucket[i]
                cost = len(entry[_PAYLOAD]) + overhead_bytes
                if cost <= remaining:
                    remaining -= cost
                    out.append(entry[_PAYLOAD])
                    taken.append(entry)
                    del bucket[i]
                    if remaining <= overhead_bytes:
                        break
                else:
                    skips += 1
                    if skips > self.max_skips:
                        break
                i -= 1
            if remaining <= overhead_bytes or skips > self.max_skips:
                break
        if taken:
            self._advance(taken, limit)
        return out

    def _advance(self, taken, limit):
        # Moves each taken entry one bucket up, or out of the queue at the
        # limit. `taken` runs bucket by bucket, newest first within each, so
        # walking it backwards yields ascending seqs per destination bucket.
        buckets = self._buckets
        by_key = self._by_key
        i = len(taken) - 1
        while i >= 0:
            entry = taken[i]
            i -= 1
            count = entry[_TRANSMITS]
            source = buckets.get(count)
            if source is not None and not source:
                del buckets[count]
            count += 1
            entry[_TRANSMITS] = count
            if count >= limit:
                del by_key[entry[_KEY]]
                continue
            bucket = buckets.get(count)
            seq = entry[_SEQ]
            if bucket is None:
                buckets[count] = [entry]
            elif bucket[-1][_SEQ] < seq:
                bucket.append(entry)
            else:
                bucket.insert(_find(bucket, seq), entry)

    def _unlink(self, entry):
        # Removes an entry from its bucket (it must be there).
        count = entry[_TRANSMITS]
        bucket = self._buckets[count]
        index = _find(bucket, entry[_SEQ])
        assert bucket[index] is entry, "broadcast queue: bucket out of order"
        del bucket[index]
        if not bucket:
            del self._buckets[count]

    def __repr__(self):
        return "BroadcastQueue(pending=%d)" % len(self._by_key)
