"""Unit tests of agent.keys: key files, trust directories, keyrings, signer and verifier."""

import base64
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent import keys

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors", "ed25519_public_keys.json")
with open(VECTORS) as _handle:
    PUBLIC_KEY_VECTORS = json.load(_handle)
REFUSED = PUBLIC_KEY_VECTORS["refused"]
ACCEPTED = PUBLIC_KEY_VECTORS["accepted"]


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def one_base64_line(path):
    text = open(path).read()
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    return base64.b64decode(text.strip(), validate=True)


def test_keygen_writes_0600_and_0644_files_of_one_base64_line(tmp_path):
    old_umask = os.umask(0o077)  # keygen sets the modes itself, whatever the umask
    try:
        key_path, pub_path = keys.keygen("node-a", str(tmp_path))
    finally:
        os.umask(old_umask)
    assert (key_path, pub_path) == (str(tmp_path / "node-a.key"), str(tmp_path / "node-a.pub"))
    assert mode_of(key_path) == 0o600
    assert mode_of(pub_path) == 0o644
    seed, public = one_base64_line(key_path), one_base64_line(pub_path)
    assert len(seed) == 32 and len(public) == 32
    # The files are what cryptography itself derives: seed -> public key.
    derived = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert derived == public


def test_keygen_round_trips_through_cryptography(tmp_path):
    keys.keygen("node-a", str(tmp_path))
    private = keys.load_private_key(str(tmp_path / "node-a.key"))
    public = keys.load_public_key(str(tmp_path / "node-a.pub"))
    signature = private.sign(b"hello")
    Ed25519PublicKey.from_public_bytes(public).verify(signature, b"hello")  # raises if wrong
    assert keys.public_bytes(private) == public


def test_keygen_refuses_to_overwrite_unless_forced(tmp_path):
    keys.keygen("node-a", str(tmp_path))
    before = (tmp_path / "node-a.key").read_text()
    with pytest.raises(keys.KeyFileError, match=r"node-a\.key: already exists; refusing to overwrite"):
        keys.keygen("node-a", str(tmp_path))
    (tmp_path / "node-a.key").unlink()
    with pytest.raises(keys.KeyFileError, match=r"node-a\.pub: already exists"):
        keys.keygen("node-a", str(tmp_path))  # checks both files before writing either
    assert not (tmp_path / "node-a.key").exists()
    (tmp_path / "node-a.pub").unlink()
    keys.keygen("node-a", str(tmp_path))
    keys.keygen("node-a", str(tmp_path), force=True)
    assert (tmp_path / "node-a.key").read_text() != before
    assert mode_of(tmp_path / "node-a.key") == 0o600 and mode_of(tmp_path / "node-a.pub") == 0o644
    assert sorted(os.listdir(tmp_path)) == ["node-a.key", "node-a.pub"]  # no temporary files left


def test_keygen_does_not_follow_a_planted_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    os.symlink(target, tmp_path / "node-a.key")
    with pytest.raises(keys.KeyFileError, match="already exists"):
        keys.keygen("node-a", str(tmp_path))
    assert not target.exists()


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "x" * 65])
def test_keygen_refuses_bad_names(tmp_path, name):
    with pytest.raises(keys.KeyFileError, match="key name"):
        keys.keygen(name, str(tmp_path))


def test_keygen_into_missing_directory(tmp_path):
    with pytest.raises(keys.KeyFileError, match="no such directory"):
        keys.keygen("a", str(tmp_path / "nope"))


# 0640 is refused for a key of the agent's own user, accepted for root's
# (root:leaderd 0640, the shipped layout): tests/test_key_files.py.
@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o620, 0o650])
def test_exposed_private_key_is_refused_with_the_chmod_command(tmp_path, mode):
    key_path, _ = keys.keygen("node-a", str(tmp_path))
    os.chmod(key_path, mode)
    with pytest.raises(keys.KeyFileError) as info:
        keys.load_private_key(key_path)
    message = str(info.value)
    assert key_path in message and "%04o" % mode in message
    assert "chmod 600 " + key_path in message


@pytest.mark.parametrize("mode", [0o400, 0o600])
def test_owner_only_modes_are_accepted(tmp_path, mode):
    # The key loads, and it is the key whose public half keygen wrote.
    key_path, pub_path = keys.keygen("node-a", str(tmp_path))
    os.chmod(key_path, mode)
    private = keys.load_private_key(key_path)
    assert keys.public_bytes(private) == keys.load_public_key(pub_path)
    assert len(keys.public_bytes(private)) == 32


def write(path, text, mode=0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


@pytest.mark.parametrize("text,problem", [
    ("", "exactly one line"),
    ("AAAA\nAAAA\n", "exactly one line"),
    ("not base64!\n", "not valid base64"),
    (base64.b64encode(bytes(16)).decode() + "\n", "decodes to 16 bytes"),
    ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n", "exactly one line"),
])
def test_bad_private_key_files_name_the_file_and_problem(tmp_path, text, problem):
    path = write(tmp_path / "bad.key", text)
    with pytest.raises(keys.KeyFileError) as info:
        keys.load_private_key(path)
    assert str(info.value).startswith(path + ": ") and problem in str(info.value)


def test_missing_key_files(tmp_path):
    with pytest.raises(keys.KeyFileError, match="no such file"):
        keys.load_private_key(str(tmp_path / "x.key"))
    with pytest.raises(keys.KeyFileError, match="no such file"):
        keys.load_public_key(str(tmp_path / "x.pub"))


def test_bad_public_key_file(tmp_path):
    path = write(tmp_path / "x.pub", base64.b64encode(bytes(31)).decode() + "\n", 0o644)
    with pytest.raises(keys.KeyFileError, match=r"x\.pub: decodes to 31 bytes"):
        keys.load_public_key(path)


@pytest.mark.parametrize("vector", REFUSED, ids=[v["what"] for v in REFUSED])
def test_small_order_and_non_canonical_public_keys_are_refused_naming_the_file(tmp_path, vector):
    raw = bytes.fromhex(vector["key"])
    assert vector["problem"] in keys.public_key_problem(raw)
    path = write(tmp_path / "evil.pub", base64.b64encode(raw).decode() + "\n", 0o644)
    with pytest.raises(keys.KeyFileError) as info:
        keys.load_public_key(path)
    message = str(info.value)
    assert message.startswith(path + ": not a usable Ed25519 public key: "), message
    assert vector["problem"] in message, message
    # In a trust directory, the file is named among good ones.
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    keys.keygen("good", str(tmp_path))
    os.replace(tmp_path / "good.pub", trusted / "good.pub")
    os.replace(path, trusted / "evil.pub")
    with pytest.raises(keys.KeyFileError) as info:
        keys.load_trusted_dir(str(trusted))
    assert str(info.value).startswith(str(trusted / "evil.pub") + ": "), str(info.value)


@pytest.mark.parametrize("vector", ACCEPTED, ids=[v["what"] for v in ACCEPTED])
def test_ordinary_public_keys_are_accepted(tmp_path, vector):
    raw = bytes.fromhex(vector["key"])
    assert keys.public_key_problem(raw) is None
    path = write(tmp_path / "ok.pub", base64.b64encode(raw).decode() + "\n", 0o644)
    assert keys.load_public_key(path) == raw


def test_generated_keys_are_never_refused():
    for _ in range(200):
        assert keys.public_key_problem(keys.public_bytes(Ed25519PrivateKey.generate())) is None


def test_why_small_order_keys_are_refused():
    # The identity as a public key A: [k]A is the identity for every k, so a
    # signature (R, S) with R = [S]B verifies for any message, and
    # cryptography (OpenSSL) takes those bytes as a key. R and S here come
    # from no private key that A stands for: R is another key's public key
    # [a]B, S is its secret scalar a.
    import hashlib
    identity = bytes.fromhex(REFUSED[0]["key"])
    seed = bytes(range(32))
    digest = bytearray(hashlib.sha512(seed).digest()[:32])
    digest[0] &= 248
    digest[31] = (digest[31] & 127) | 64
    order = 2 ** 252 + 27742317777372353535851937790883648493
    a = int.from_bytes(digest, "little") % order
    r = keys.public_bytes(Ed25519PrivateKey.from_private_bytes(seed))
    forged = r + a.to_bytes(32, "little")
    for message in (b"leaderd/claim/v1 any claim", b"another one"):
        assert keys.verify(identity, message, forged) is True
    assert "small order" in keys.public_key_problem(identity)


def test_trusted_dir_loads_name_pub_files_only(tmp_path):
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    expected = {}
    for name in ("node-a", "node-b", "pi.kitchen"):
        keys.keygen(name, str(tmp_path))
        os.replace(tmp_path / (name + ".pub"), trusted / (name + ".pub"))
        expected[name] = keys.load_public_key(str(trusted / (name + ".pub")))
    (trusted / "README").write_text("public keys of the nodes allowed to lead\n")
    (trusted / ".node-c.pub.swp").write_text("junk")
    assert keys.load_trusted_dir(str(trusted)) == expected


def test_trusted_dir_errors(tmp_path):
    with pytest.raises(keys.KeyFileError, match="no such directory"):
        keys.load_trusted_dir(str(tmp_path / "none"))
    (tmp_path / "bad.pub").write_text("zzz\n")
    with pytest.raises(keys.KeyFileError, match=r"bad\.pub: not valid base64"):
        keys.load_trusted_dir(str(tmp_path))


def test_cluster_key_and_keyring_with_comments(tmp_path):
    first, second = keys.generate_cluster_key(), keys.generate_cluster_key()
    assert first != second and len(base64.b64decode(first, validate=True)) == 32
    path = write(tmp_path / "keyring", "# leaderd keyring: first key is primary\n\n%s\n   \n"
                 "# the old key, kept during rotation\n  %s  \n" % (first, second), 0o640)
    assert keys.load_keyring(path) == [base64.b64decode(first), base64.b64decode(second)]


@pytest.mark.parametrize("text,problem", [
    ("# only comments\n\n", "no keys"),
    ("%s\n" % base64.b64encode(bytes(8)).decode(), "keyring:1: key decodes to 8 bytes, at least 16"),
    ("# c\nnot base64!\n", "keyring:2: not valid base64"),
    ("{k}\n{k}\n".format(k=base64.b64encode(bytes(range(32))).decode()), "keyring:2: the same key appears twice"),
])
def test_bad_keyrings(tmp_path, text, problem):
    path = write(tmp_path / "keyring", text)
    with pytest.raises(keys.KeyFileError) as info:
        keys.load_keyring(path)
    assert problem in str(info.value)


def test_world_readable_keyring_is_refused(tmp_path):
    path = write(tmp_path / "keyring", keys.generate_cluster_key() + "\n", 0o644)
    with pytest.raises(keys.KeyFileError, match="chmod 640"):
        keys.load_keyring(path)


def test_signer_and_verifier_interoperate_with_cryptography(tmp_path):
    key_path, pub_path = keys.keygen("node-a", str(tmp_path))
    signer = keys.make_signer(keys.load_private_key(key_path))
    public = keys.load_public_key(pub_path)
    data = b"leaderd/claim/v1" + bytes(range(40))
    signature = signer(data)
    assert isinstance(signature, bytes) and len(signature) == 64
    assert keys.verify(public, data, signature) is True
    # Our verifier accepts a signature made by cryptography directly, and the reverse.
    other = Ed25519PrivateKey.generate()
    other_public = keys.public_bytes(other)
    assert keys.verify(other_public, data, other.sign(data)) is True
    Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
    # Ed25519 signatures are deterministic: same key, same data, same bytes.
    assert signer(data) == signature


@pytest.mark.parametrize("mangle", [
    lambda pub, data, sig: (pub, data + b"x", sig),
    lambda pub, data, sig: (pub, data, bytes([sig[0] ^ 1]) + sig[1:]),
    lambda pub, data, sig: (bytes(32), data, sig),
    lambda pub, data, sig: (pub[:31], data, sig),
    lambda pub, data, sig: (pub, data, sig[:63]),
    lambda pub, data, sig: (None, data, sig),
    lambda pub, data, sig: (pub, None, sig),
    lambda pub, data, sig: ("text", data, sig),
])
def test_verifier_never_raises(mangle):
    private = Ed25519PrivateKey.generate()
    public = keys.public_bytes(private)
    signature = private.sign(b"data")
    assert keys.verify(*mangle(public, b"data", signature)) is False
