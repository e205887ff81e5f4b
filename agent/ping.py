"""`leaderd ping`: one authenticated SWIM probe of a remote agent, over aioudp.

aioudp suits this request/response exchange: one connected socket, one
datagram out, wait for the ack. The agent's own gossip socket does not use it
(docs/OPERATIONS.md explains why: its server side keeps a task and an
unbounded queue per source address).
"""

import asyncio
import os
import time

import aioudp

from agent.core import rules, wire
from agent.core.auth import Keyring


def parse_target(text):
    """(host, port) from "HOST:PORT" (IPv6 as "[addr]:port"), as cluster.seeds reads one; ValueError otherwise."""
    try:
        return rules.host_port(text, True)
    except ValueError as exc:
        raise ValueError("target %r: %s" % (text, exc)) from None


def cluster_and_keyring(config_path, cluster, keyring_path):
    """The cluster name and keyring (list of bytes or None) to ping with."""
    from agent import config, keys
    keyring = None
    if config_path:
        cfg = config.load_config(config_path)
        cluster = cluster or cfg.cluster.name
        keyring_path = keyring_path or cfg.cluster.keyring_file
    if keyring_path:
        keyring = keys.load_keyring(keyring_path)
    return cluster or "default", keyring


async def ping(host, port, cluster, keyring, timeout_s):
    """Sends one ping; returns (responder name, rtt ms) or None on timeout."""
    codec = wire.Codec(cluster, "leaderd-ping", Keyring(keyring) if keyring else None)
    seq = int.from_bytes(os.urandom(4), "big") & 0x3FFFFFFF
    datagram = codec.seal([wire.encode_message(wire.Ping(seq=seq, target=wire.ANY_TARGET))])
    async with aioudp.connect(host, port, queue_size=16) as conn:
        started = time.perf_counter()
        await conn.send(datagram)
        deadline = started + timeout_s
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            try:
                data = await asyncio.wait_for(conn.recv(), left)
            except asyncio.TimeoutError:
                return None
            if data is None:
                return None
            try:
                sender, messages = codec.open(data)
            except wire.WireError:
                continue
            for msg in messages:
                if msg.type_code == wire.T_ACK and msg.seq == seq:
                    return sender, (time.perf_counter() - started) * 1000.0
