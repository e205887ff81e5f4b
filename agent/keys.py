"""Key files: Ed25519 signing keys, trust lists and cluster keyrings.

The formats are WireGuard's: one line of base64 per key, no PEM, so that a
board can read them with nothing but ``binascii``.

- ``NAME.key``: base64 of the raw 32-byte Ed25519 private seed, mode 0600.
  Refused, like ssh refuses an exposed identity, when group or others may
  read it.
- ``NAME.pub``: base64 of the raw 32-byte Ed25519 public key, mode 0644.
  A trust directory holds one ``NAME.pub`` per node allowed to lead. A key
  that is not the canonical encoding of a curve point, or is one of the
  eight points of small order, is refused (``public_key_problem``).
- keyring: one base64 cluster key (HMAC, >= 16 bytes) per line, the first
  being the primary, none twice. Refused when
  others (not the group) may read it: anyone holding it can forge packets.

In every file, blank lines and ``#`` comments are ignored; base64 is read
strictly; names, key sizes and the public key checks are the rules of
agent/core/rules.py, which the board's config follows too.

Every error is a KeyFileError (a ValueError) naming the file and the problem.
"""

import base64
import os
import secrets
import stat

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.core import rules
from agent.core.rules import KEY_BYTES, MIN_CLUSTER_KEY_BYTES, public_key_problem

__all__ = [
    "KeyFileError", "keygen", "load_private_key", "load_public_key", "load_trusted_dir",
    "generate_cluster_key", "load_keyring", "public_bytes", "make_signer", "verify", "decode_public_key",
    "public_key_problem",
    "KEY_BYTES", "SIGNATURE_BYTES", "MIN_CLUSTER_KEY_BYTES",
]

SIGNATURE_BYTES = 64

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the file and the problem."""


def _check_name(name):
    """A node name (agent.core.rules.name_problem: it is a file name too, without '/' or a leading '.')."""
    problem = rules.name_problem(name)
    if problem is not None:
        raise KeyFileError("key name %r: %s" % (name, problem))


def _b64line(raw):
    return base64.b64encode(raw).decode("ascii") + "\n"


def _decode_b64(text, path, what):
    raw = rules.base64_bytes(text)
    if raw is None:
        raise KeyFileError("%s: not valid base64 (expected one line: the base64 of %s)" % (path, what))
    return raw


def _read_text(path, what):
    try:
        with open(path, "rb") as handle:
            data = handle.read(64 * 1024)
    except FileNotFoundError:
        raise KeyFileError("%s: no such file (%s)" % (path, what)) from None
    except IsADirectoryError:
        raise KeyFileError("%s: is a directory, expected a file (%s)" % (path, what)) from None
    except OSError as exc:
        raise KeyFileError("%s: cannot read %s: %s" % (path, what, exc.strerror or exc)) from None
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError("%s: not text (expected base64 lines for %s)" % (path, what)) from None


def _one_line(path, what):
    """The single line of a key file (blank and '#' lines aside, as the board reads it)."""
    lines = rules.key_lines(_read_text(path, what))
    if len(lines) != 1:
        raise KeyFileError("%s: expected exactly one line (the base64 of %s), found %d"
                           % (path, what, len(lines)))
    return lines[0][1]


def _write_new(path, data, mode, force):
    """Writes data to path, created with mode (umask ignored) and never half-written.

    Without force the file is created with O_CREAT | O_EXCL, so an existing
    file (or a symlink planted in its place) is never overwritten. With force
    it is written to a fresh temporary file beside it, then renamed over it.
    """
    target = path
    if force:
        target = "%s.tmp-%s" % (path, secrets.token_hex(4))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(target, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits off a public key
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(target)
        raise
    os.close(fd)
    if force:
        os.replace(target, path)


def keygen(name, out_dir, force=False):
    """Writes a new Ed25519 key pair NAME.key (0600) and NAME.pub (0644) into out_dir.

    Returns (key_path, pub_path). Refuses to overwrite either file unless
    force is true; checks both before writing either.
    """
    _check_name(name)
    key_path = os.path.join(out_dir, name + ".key")
    pub_path = os.path.join(out_dir, name + ".pub")
    if not os.path.isdir(out_dir):
        raise KeyFileError("%s: no such directory" % (out_dir,))
    if not force:
        for path in (key_path, pub_path):
            if os.path.lexists(path):
                raise KeyFileError("%s: already exists; refusing to overwrite it" % (path,))
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    try:
        _write_new(key_path, _b64line(seed).encode("ascii"), PRIVATE_MODE, force)
        try:
            _write_new(pub_path, _b64line(public_bytes(private)).encode("ascii"), PUBLIC_MODE, force)
        except BaseException:
            if not force:
                os.unlink(key_path)  # never leave half a pair behind
            raise
    except FileExistsError as exc:
        raise KeyFileError("%s: already exists; refusing to overwrite it" % (exc.filename,)) from None
    except OSError as exc:
        raise KeyFileError("%s: cannot write: %s" % (exc.filename or out_dir, exc.strerror or exc)) from None
    return key_path, pub_path


def load_private_key(path):
    """The Ed25519PrivateKey in path (NAME.key), refused if group or others may read it."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise KeyFileError("%s: no such file (the node's private signing key)" % (path,)) from None
    except OSError as exc:
        raise KeyFileError("%s: cannot read the private key: %s" % (path, exc.strerror or exc)) from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError("%s: not a regular file (the node's private signing key)" % (path,))
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            "%s: private key is accessible by group or others (mode %04o); it must be readable "
            "by its owner only. Run: chmod 600 %s" % (path, mode, path))
    seed = _decode_b64(_one_line(path, "a 32-byte Ed25519 private key"), path, "a 32-byte Ed25519 private key")
    if len(seed) != KEY_BYTES:
        raise KeyFileError("%s: decodes to %d bytes, expected the 32-byte Ed25519 private seed"
                           % (path, len(seed)))
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_public_key(path):
    """The raw 32-byte Ed25519 public key in path (NAME.pub)."""
    raw = _decode_b64(_one_line(path, "a 32-byte Ed25519 public key"), path, "a 32-byte Ed25519 public key")
    if len(raw) != KEY_BYTES:
        raise KeyFileError("%s: decodes to %d bytes, expected a 32-byte Ed25519 public key" % (path, len(raw)))
    return decode_public_key(raw, path)


def decode_public_key(raw, where):
    """raw (bytes) checked to be a usable 32-byte Ed25519 public key; where names it in errors."""
    if len(raw) != KEY_BYTES:
        raise KeyFileError("%s: %d bytes, expected a 32-byte Ed25519 public key" % (where, len(raw)))
    problem = public_key_problem(raw)
    if problem is not None:
        raise KeyFileError("%s: not a usable Ed25519 public key: %s" % (where, problem))
    return bytes(raw)


def load_trusted_dir(directory):
    """{name: raw 32-byte public key} from the NAME.pub files in directory.

    Other files (and hidden ones) are ignored, so the directory may also hold
    a README. The first bad file raises KeyFileError naming it.
    """
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        raise KeyFileError("%s: no such directory (trusted public keys, NAME.pub)" % (directory,)) from None
    except NotADirectoryError:
        raise KeyFileError("%s: not a directory (trusted public keys, NAME.pub)" % (directory,)) from None
    except OSError as exc:
        raise KeyFileError("%s: cannot list: %s" % (directory, exc.strerror or exc)) from None
    trusted = {}
    for entry in entries:
        if entry.startswith(".") or not entry.endswith(".pub") or entry == ".pub":
            continue
        name = entry[:-len(".pub")]
        path = os.path.join(directory, entry)
        try:
            _check_name(name)
        except KeyFileError as exc:
            raise KeyFileError("%s: file name is not a node name: %s" % (path, exc)) from None
        trusted[name] = load_public_key(path)
    return trusted


def generate_cluster_key():
    """A new cluster (keyring) key: base64 of 32 random bytes."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def load_keyring(path):
    """The cluster keys in a keyring file, primary first, as a list of bytes.

    One base64 key per line; blank lines and lines starting with '#' are
    ignored. Each key decodes to >= 16 bytes; duplicates and an empty file are
    refused, as is a file that others (not the group) may read.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0  # _read_text reports the problem
    text = _read_text(path, "the cluster keyring")
    if mode & 0o007:
        raise KeyFileError("%s: keyring is accessible by others (mode %04o); anyone who reads it can forge "
                           "packets. Run: chmod 640 %s" % (path, mode, path))
    keys = []
    for lineno, line in rules.key_lines(text):
        try:
            keys.append(rules.cluster_key(line, keys))
        except ValueError as exc:
            raise KeyFileError("%s:%d: %s" % (path, lineno, exc)) from None
    if not keys:
        raise KeyFileError("%s: no keys (one base64 key per line, the first being the primary)" % (path,))
    return keys


def public_bytes(private_key):
    """The raw 32-byte public key of an Ed25519PrivateKey."""
    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def make_signer(private_key):
    """A signer for agent.core: signer(data, may_defer) -> 64-byte Ed25519 signature (never deferred)."""

    def signer(data, may_defer=False):
        return private_key.sign(bytes(data))

    return signer


def verify(public_key, data, signature):
    """The verifier for agent.core: True iff signature (64 bytes) signs data under the
    raw 32-byte public key. Never raises: anything malformed is simply False."""
    try:
        if len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
            return False
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(bytes(signature), bytes(data))
        return True
    except Exception:  # InvalidSignature, or malformed input from a peer
        return False
