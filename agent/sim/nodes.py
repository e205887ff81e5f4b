"""The simulator's cores: real Node objects with real Ed25519 keys (or none, --insecure).

Every simulated node gets an Ed25519 key pair derived from the run's seed and
its name, so a run is reproducible byte for byte:

    private seed = sha256(b"sim-key" + str(seed) + name)

and the trust list of every node allowed to lead (all of them, except
members built `untrusted`, such as the forger of the `forged` scenario).
Signing is the daemon's (cryptography's Ed25519, one signature per claim or
resignation); verification is agent.keys.verify, which never raises.

Verification cache. Each core verifies a given claim once (the core caches
its own results); a thousand cores would still verify the same claim a
thousand times. `NodeFactory(shared_cache=True)` puts one cache in front of
the verifier, keyed by (public key, signed bytes, signature): the answer is
a pure function of that key, so every core gets exactly the result it would
have computed, and the run's figures do not change (the cores still count
their own signature_checks). Only wall time does.
"""

import hashlib

from agent.core.node import Node

# The daemon's default cluster.join_timeout (agent/config.py).
JOIN_TIMEOUT_MS = 5000
# Verification results kept by the shared cache before it starts afresh.
_SHARED_CACHE_SIZE = 4096


def sim_private_key(seed, name):
    """The deterministic Ed25519 private key of node `name` in the run seeded `seed`."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    material = b"sim-key" + str(seed).encode("ascii") + name.encode("utf-8")
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(material).digest())


class NodeFactory:
    """Builds each simulated core (the Simulation's node_factory): keys, trust list, preemption.

    secure=False builds insecure cores (no keys, no trust list: unsigned claims).
    `untrusted` names get a key of their own but are left out of everyone's
    trust list: they are members, never leaders.
    join_timeout_ms is the daemon's `cluster.join_timeout` (default 5 s, as
    the daemon's): a core whose seeds are all down (a restart while they
    are) takes part in the election alone after it, as an agent does;
    None waits for a seed for ever.
    """

    def __init__(self, seed, names, secure=True, preempt=True, preempt_delay_ms=None,
                 untrusted=(), shared_cache=True, join_timeout_ms=JOIN_TIMEOUT_MS):
        self.seed = seed
        self.secure = secure
        self.preempt = preempt
        self.preempt_delay_ms = preempt_delay_ms
        self.untrusted = frozenset(untrusted)
        self.join_timeout_ms = join_timeout_ms
        self._private = {}
        self._signers = {}
        self.trusted_keys = None
        self.verifications = 0  # real Ed25519 verifications (cache misses)
        self.cache_hits = 0
        self._cache = {} if shared_cache else None
        if secure:
            from agent.keys import public_bytes
            # One dict shared by every core: the core only reads its trust list.
            self.trusted_keys = {}
            for name in names:
                if name not in self.untrusted:
                    self.trusted_keys[name] = public_bytes(self.private_key(name))

    def private_key(self, name):
        """The Ed25519PrivateKey of `name` (derived once, then kept)."""
        key = self._private.get(name)
        if key is None:
            key = self._private[name] = sim_private_key(self.seed, name)
        return key

    def public_key(self, name):
        """The raw 32-byte public key of `name`."""
        from agent.keys import public_bytes
        return public_bytes(self.private_key(name))

    def signer(self, name):
        """signer(data) -> 64-byte signature with `name`'s key (the core's injected signer)."""
        signer = self._signers.get(name)
        if signer is None:
            from agent.keys import make_signer
            signer = self._signers[name] = make_signer(self.private_key(name))
        return signer

    def verify(self, public_key, data, signature):
        """The core's injected verifier: True iff valid; never raises."""
        cache = self._cache
        if cache is not None:
            key = (bytes(public_key), bytes(data), bytes(signature))
            ok = cache.get(key)
            if ok is not None:
                self.cache_hits += 1
                return ok
        from agent.keys import verify
        self.verifications += 1
        ok = verify(public_key, data, signature)
        if cache is not None:
            if len(cache) >= _SHARED_CACHE_SIZE:
                cache.clear()
            cache[key] = ok
        return ok

    def __call__(self, name, address, profile, rng, now, priority, term=0):
        options = {"preempt": self.preempt, "join_timeout_ms": self.join_timeout_ms}
        if term:
            options["term"] = term  # the daemon's term file, from this name's earlier cores
        if self.preempt_delay_ms is not None:
            options["preempt_delay_ms"] = self.preempt_delay_ms
        if self.secure:
            options["signer"] = self.signer(name)
            options["verifier"] = self.verify
            options["trusted_keys"] = self.trusted_keys
        return Node(name=name, address=address, profile=profile, rng=rng, now=now, priority=priority,
                    **options)
