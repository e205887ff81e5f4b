"""`leaderd ping`: one authenticated SWIM probe of a remote agent.

One connected UDP socket, one datagram out, wait for the ack. A connected
socket hears the ICMP "port unreachable" of a host where nothing listens on
the port: that is reported at once as ConnectionRefusedError, not waited out.
(aioudp's client, used here before, raised that error inside the event loop's
callback, where it became a logged traceback and the ping waited out its
timeout: docs/OPERATIONS.md, section 14.)
"""

import asyncio
import os
import time

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


class _Probe(asyncio.DatagramProtocol):
    """A connected UDP endpoint: received datagrams and socket errors, in one bounded queue."""

    def __init__(self):
        self.queue = asyncio.Queue(16)

    def datagram_received(self, data, addr):
        if not self.queue.full():
            self.queue.put_nowait(data)

    def error_received(self, exc):
        # ICMP errors of our send (ECONNREFUSED: nothing listens there).
        if not self.queue.full():
            self.queue.put_nowait(exc)


async def ping(host, port, cluster, keyring, timeout_s):
    """Sends one ping; returns (responder name, rtt ms) or None on timeout.

    Raises OSError (ConnectionRefusedError when nothing listens on the port).
    """
    # The longest sender name there is: an agent answers a stranger with no
    # more bytes than it sent (docs/PROTOCOL.md, "Reflection and
    # amplification"), and its Ack carries the agent's own name, up to 64 bytes.
    sender = "leaderd-ping".ljust(wire.MAX_NAME_BYTES, "-")
    codec = wire.Codec(cluster, sender, Keyring(keyring) if keyring else None)
    seq = int.from_bytes(os.urandom(4), "big") & 0x3FFFFFFF
    datagram = codec.seal([wire.encode_message(wire.Ping(seq=seq, target=wire.ANY_TARGET))])
    loop = asyncio.get_running_loop()
    transport, probe = await loop.create_datagram_endpoint(_Probe, remote_addr=(host, port))
    try:
        started = time.perf_counter()
        transport.sendto(datagram)
        deadline = started + timeout_s
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            try:
                data = await asyncio.wait_for(probe.queue.get(), left)
            except asyncio.TimeoutError:
                return None
            if isinstance(data, OSError):
                raise data
            try:
                sender, messages = codec.open(data)
            except wire.WireError:
                continue
            for msg in messages:
                if msg.type_code == wire.T_ACK and msg.seq == seq:
                    return sender, (time.perf_counter() - started) * 1000.0
    finally:
        transport.close()
