"""leaderd on a board, starting: what Agent.start() does once (micropython/leaderd.py).

A module of its own, loaded for the start and dropped after it (as main.py
drops the config checker): on a board every function's bytecode lives in
the heap for as long as its module is loaded, and this work is done once.
It gets what it needs as arguments and returns what it made; it reaches
into no Agent attribute (the board build shortens each module's private
names on its own: micropython/build.py).
"""

import socket
import time

from micropython import const

from agent.core import wire
from agent.core.auth import HmacKey, Keyring
from agent.core.awareness import Awareness
from agent.core.broadcast import BroadcastQueue
from agent.core.election import Election
from agent.core.guard import Guard
from agent.core.membership import MemberTable
from agent.core.nameset import NameSet
from agent.core.node import Node

# The core's long-lived caches, bounded for a board's heap. They grow with
# time, not members; at the daemon's bounds (1024 final probes, 64
# signature checks) they would hold tens of KB after days.
_MAX_FINAL_PROBES = const(32)
_CLAIM_CACHE_SIZE = const(4)
# Decoded public keys ed25519.py keeps (~190 B each; no precomputed tables).
# The core caches every verdict, so this only saves the point decoding
# when the same leader claims a new term.
_KEY_TABLES = const(1)
# 2026-01-01T00:00Z in seconds since the Unix epoch, and since 2000 (the
# epoch of ports whose time.gmtime(0) says 2000): the wall clock's share of
# a new incarnation counts from there (agent/state.py on the daemon).
_EPOCH_2026_UNIX = const(1767225600)
_EPOCH_2026_2000 = const(820540800)

# (class or module, function) that runs once on a board, by start(): see there.
ONCE = ((Node, "join"), (Node, "__init__"), (Election, "__init__"), (Guard, "__init__"),
        (wire.Codec, "__init__"), (MemberTable, "__init__"), (Awareness, "__init__"), (BroadcastQueue, "__init__"), (Keyring, "__init__"),
        (HmacKey, "__init__"), (NameSet, "__init__"), (wire, "cluster_tag"))


def start(cfg, tuples, now, sign, defer_verification, address, log, once=()):
    """Binds the socket, makes the node and joins it through the seeds.

    cfg: the config dict; tuples: whether sockets take (host, port) tuples;
    sign, defer_verification: the Agent's signer and verifier for the core;
    address(raw) -> (host, port); log(level, text); once: more (class, function)
    that will not run again (the Agent's own start). Returns (socket, node,
    the leaderd_state.State of election.term_file or None, verifier or None). Raises OSError
    (bind) or ValueError (a signing key its trust list contradicts).
    """
    # The config rules (agent.core.rules, ~12 KB of heap on a 64-bit build)
    # are the config checker's alone: once a config is made nothing on a
    # board needs them. main.py drops them with the checker; a program that
    # loaded its config itself (micropython/README.md) gets them back here.
    import sys
    if "agent.core.rules" in sys.modules:
        del sys.modules["agent.core.rules"]
        import agent.core
        if hasattr(agent.core, "rules"):
            del agent.core.rules
    name = cfg["name"]
    trusted = cfg["trusted_keys"]
    seed = cfg["signing_seed"]
    signer = verifier = None
    if trusted is not None or seed is not None:
        import ed25519
        ed25519.KEY_CACHE_SIZE = _KEY_TABLES
        if seed is None:
            ed25519.drop_signing()  # it only verifies: the signing code's heap is won back
    if seed is not None:
        signer = sign
        public = ed25519.public_key(seed)
        if trusted is not None:
            if name not in trusted:
                trusted = dict(trusted)
                trusted[name] = public
                log("warning", "node %s is not in its own election.trusted_keys; trusting its key "
                    "locally, but other nodes need its public key to accept its claims" % name)
            elif trusted[name] != public:
                raise ValueError("election.signing_key does not match election.trusted_keys.%s" % name)
    if trusted is not None:
        verifier = defer_verification
    for warning in cfg["warnings"]:
        log("warning", warning)
    bind = cfg["bind"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(bind if tuples else socket.getaddrinfo(bind[0], bind[1])[0][-1])
    except OSError as exc:
        sock.close()
        raise OSError("cannot bind %s:%d: %s" % (bind[0], bind[1], exc))
    sock.setblocking(False)
    try:
        return _start(cfg, sock, now, signer, verifier, trusted, address, log, once)
    except BaseException:
        sock.close()
        raise


def _start(cfg, sock, now, signer, verifier, trusted, address, log, once):
    import os
    import random
    # The core calls only getrandbits(n), n <= 32: the random module itself will do.
    seed_bits = 0
    for byte in os.urandom(4):
        seed_bits = (seed_bits << 8) | byte
    random.seed(seed_bits & 0x3FFFFFFF)  # a small int on every port
    # A new life starts above the incarnation of the last one, kept in
    # election.term_file (leaderd_state.py), and at least at the seconds
    # since 2026 when the board's clock is set (NTP): an unset clock says
    # 2000 or 1970, and then only the file counts.
    term = 0
    state = None
    incarnation = int(time.time()) - (_EPOCH_2026_UNIX if time.gmtime(0)[0] == 1970 else _EPOCH_2026_2000)
    if cfg["term_file"]:
        import leaderd_state
        state = leaderd_state.State(cfg["term_file"], log)
        term = state.term
        if state.saved >= incarnation:
            incarnation = state.saved + 1
    if incarnation < 0:
        incarnation = 0
    node = Node(
        name=cfg["name"], address=cfg["advertise"], profile=cfg["profile"], rng=random, now=now,
        cluster=cfg["cluster"], keyring=cfg["keyring"], priority=cfg["priority"], tags=cfg["tags"],
        signer=signer, verifier=verifier, trusted_keys=trusted, preempt=cfg["preempt"],
        preempt_delay_ms=cfg["preempt_delay_ms"],
        max_final_probes=_MAX_FINAL_PROBES, claim_cache_size=_CLAIM_CACHE_SIZE, cache_records=False,
        max_members=cfg.pop("max_members"),  # read once: the Agent keeps cfg
        member_checks=False, term=term, incarnation=incarnation, join_timeout_ms=cfg["join_timeout_ms"])
    seeds = []
    for host, port in cfg["seeds"]:
        try:
            seeds.append(address(socket.getaddrinfo(host, port)[0][-1]))
        except OSError as exc:
            log("warning", "seed %s:%d: cannot resolve: %s" % (host, port, exc))
    node.join(seeds, now)
    # What has run for the last time on a board: the node's join and the
    # constructors of the node and its parts, each made once, by Node()
    # (tests/test_board_config.py checks that nothing else makes them).
    # Their bytecode is heap to win back, as this module's is. The value
    # goes first: MicroPython's del leaves it in the table (map.c keeps a
    # removed slot's value), where the collector still sees it.
    for owner, name in ONCE + once:
        setattr(owner, name, None)
        delattr(owner, name)
    return sock, node, state, verifier
