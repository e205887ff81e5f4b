"""Packet authentication: HMAC-SHA256 (written out, MicroPython has no hmac)
and the cluster keyring (several keys: send with the primary, accept any)."""

import hashlib
import struct

TAG_BYTES = 16
_BLOCK = 64


def _xor_pad(key, pad):
    return bytes([b ^ pad for b in key])


class HmacKey:
    """One HMAC-SHA256 key with its pads precomputed and its 32-bit key id."""

    def __init__(self, key):
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise ValueError("cluster key must be at least 16 bytes, got %d" % len(key))
        key = bytes(key)
        self.key = key
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key + bytes(_BLOCK - len(key))
        self._inner = _xor_pad(key, 0x36)
        self._outer = _xor_pad(key, 0x5C)
        self.key_id = struct.unpack(">I", hashlib.sha256(b"leaderd-key-id" + self.key).digest()[:4])[0]

    def _mac(self, parts):
        # The full 32-byte HMAC-SHA256 of the concatenation of parts (bytes-like).
        inner = hashlib.sha256(self._inner)
        for part in parts:
            inner.update(part)
        outer = hashlib.sha256(self._outer)
        outer.update(inner.digest())
        return outer.digest()

    def tag(self, data):
        """The 16-byte truncated tag that datagrams carry."""
        return self._mac((data,))[:TAG_BYTES]

    def tag_parts(self, parts):
        """The tag of the concatenation of parts (no joined copy is made)."""
        return self._mac(parts)[:TAG_BYTES]


def equal_tags(a, b):
    """Compares two tags without an early exit on the first differing byte."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


class Keyring:
    """The cluster keys: the first is the primary (used to send); all verify.

    Rotation without downtime, as in Serf: install the new key everywhere
    (verify with both), make it primary everywhere, then remove the old one.
    """

    def __init__(self, keys):
        if not keys:
            raise ValueError("keyring must hold at least one key")
        self.keys = [HmacKey(k) for k in keys]
        self.primary = self.keys[0]
        self._by_id = {}
        for k in self.keys:
            self._by_id[k.key_id] = k

    def find(self, key_id):
        """The key with that id, or None."""
        return self._by_id.get(key_id)
