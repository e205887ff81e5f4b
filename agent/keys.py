"""Key files: Ed25519 signing keys, trust lists and cluster keyrings.

The formats are WireGuard's: one line of base64 per key, no PEM, so that a
board can read them with nothing but ``binascii``.

- ``NAME.key``: base64 of the raw 32-byte Ed25519 private seed. Opened
  without following a symbolic link (O_NOFOLLOW) and checked on the open
  file (fstat), so that what is checked is what is read. Accepted when owned
  by root or by the agent's own user, with no access for others and no
  write access for the group; the group may read it only when root owns it:
  the shipped tmpfiles make it ``root:leaderd 0640`` (root gives the
  service's group read access), and a key of the agent's own user is
  ``0600`` or ``0400``, as ssh wants an identity.
- ``NAME.pub``: base64 of the raw 32-byte Ed25519 public key, mode 0644.
  A trust directory holds one ``NAME.pub`` per node allowed to lead. The
  directory and each ``NAME.pub`` (a regular file, not a link) must be
  owned by root or by the agent's own user and writable by nobody else (no
  group or world write bit): whoever can write there decides who may
  lead. A key that is not the canonical encoding of a curve point, or is
  one of the eight points of small order, is refused
  (``public_key_problem``).
- keyring: one base64 cluster key (HMAC, >= 16 bytes) per line, the first
  being the primary, none twice. Opened and checked as NAME.key, except
  that its group may read it whoever owns it (``root:leaderd 0640``); still
  refused when others may read it: anyone holding it can forge packets.

"Owned by root or by the agent's own user" (its effective uid): under the
systemd unit the agent is the user leaderd and the files are root's; an
agent that a user runs from a checkout (or the tests) owns its own files.
Accepting the agent's own user gives nothing away: that user reads the
signing key anyway, and whoever holds it can claim as this node.

In every file, blank lines and ``#`` comments are ignored; base64 is read
strictly; names, key sizes and the public key checks are the rules of
agent/core/rules.py, which the board's config follows too.

Every error is a KeyFileError (a ValueError) naming the file and the problem.
"""

import base64
import errno
import os
import secrets
import shlex
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


def _owner_problem(info, path, what, fix):
    """Why a file or directory owned as info says (an os.stat_result) must not be trusted, or None."""
    if info.st_uid in (0, os.geteuid()):
        return None
    return ("%s: %s is owned by uid %d; it must be owned by root or by the user the agent runs as (uid %d), "
            "or that user could change it. Run: %s" % (path, what, info.st_uid, os.geteuid(), fix))


def _open_checked(path, what, check, dir_fd=None, name=None):
    """The bytes of the regular file at path, opened without following a symlink and checked on the open file.

    check(info) returns a problem (a sentence) or None, info being fstat of
    the open descriptor: the file checked is the file read. With dir_fd,
    name is opened relative to that directory (path names it in messages).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path if name is None else name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise KeyFileError("%s: no such file (%s)" % (path, what)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyFileError("%s: is a symbolic link; key files are opened without following links "
                               "(%s): name the file itself, or copy it here" % (path, what)) from None
        raise KeyFileError("%s: cannot read %s: %s" % (path, what, exc.strerror or exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError("%s: not a regular file (%s)" % (path, what))
        problem = check(info)
        if problem is not None:
            raise KeyFileError(problem)
        chunks, size = [], 0
        while size < 64 * 1024:
            chunk = os.read(fd, 64 * 1024 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise KeyFileError("%s: cannot read %s: %s" % (path, what, exc.strerror or exc)) from None
    finally:
        os.close(fd)


def _text(data, path, what):
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError("%s: not text (expected base64 lines for %s)" % (path, what)) from None


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


def _one_line(path, what, text=None):
    """The single line of a key file (blank and '#' lines aside, as the board reads it)."""
    lines = rules.key_lines(_read_text(path, what) if text is None else text)
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


def _private_key_problem(path, info):
    """Why the open NAME.key described by info (fstat) must not be used, or None (see the module doc)."""
    quoted = shlex.quote(path)
    problem = _owner_problem(info, path, "the private key",
                             "chown root:leaderd %s && chmod 640 %s (the shipped tmpfiles do it: "
                             "systemd-tmpfiles --create leaderd.conf)" % (quoted, quoted))
    if problem is not None:
        return problem
    mode = stat.S_IMODE(info.st_mode)
    allowed = 0o740 if info.st_uid == 0 else 0o700  # root may give its group read access (root:leaderd 0640)
    if mode & ~allowed & 0o777:
        return ("%s: private key is accessible by group or others (mode %04o); it must be readable by its "
                "owner only, or by root and the service's group (root:leaderd 0640, as the shipped tmpfiles "
                "make it). Run: chmod 600 %s" % (path, mode, quoted))
    return None


def load_private_key(path):
    """The Ed25519PrivateKey in path (NAME.key): opened without following a link, owner and mode checked on it."""
    what = "the node's private signing key"
    data = _open_checked(path, what, lambda info: _private_key_problem(path, info))
    text = _text(data, path, "a 32-byte Ed25519 private key")
    seed = _decode_b64(_one_line(path, "a 32-byte Ed25519 private key", text), path, "a 32-byte Ed25519 private key")
    if len(seed) != KEY_BYTES:
        raise KeyFileError("%s: decodes to %d bytes, expected the 32-byte Ed25519 private seed"
                           % (path, len(seed)))
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_public_key(path, text=None):
    """The raw 32-byte Ed25519 public key in path (NAME.pub), or in text read from it."""
    raw = _decode_b64(_one_line(path, "a 32-byte Ed25519 public key", text), path, "a 32-byte Ed25519 public key")
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


def _writable_problem(info, path, what, fix):
    """Why a trust file or directory (info: its fstat) is not safe to believe, or None: owner, then write bits."""
    problem = _owner_problem(info, path, what, "chown root:root %s" % shlex.quote(path))
    if problem is not None:
        return problem
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        return ("%s: %s is writable by %s (mode %04o); whoever can write it decides which nodes may lead. "
                "Run: %s" % (path, what, "group and others" if mode & 0o022 == 0o022 else
                             "its group" if mode & 0o020 else "others", mode, fix))
    return None


def load_trusted_dir(directory):
    """{name: raw 32-byte public key} from the NAME.pub files in directory.

    The directory and every NAME.pub must be owned by root or by the agent's
    own user and writable by nobody else; a NAME.pub must be a regular file
    (a symbolic link is refused). Each is opened, then checked (fstat) on the
    open descriptor, and the files are opened relative to the directory's.
    Other files (and hidden ones) are ignored, so the directory may also hold
    a README. The first bad file raises KeyFileError naming it.
    """
    what = "trusted public keys, NAME.pub"
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        dir_fd = os.open(directory, flags)
    except FileNotFoundError:
        raise KeyFileError("%s: no such directory (%s)" % (directory, what)) from None
    except NotADirectoryError:
        raise KeyFileError("%s: not a directory (%s)" % (directory, what)) from None
    except OSError as exc:
        raise KeyFileError("%s: cannot list: %s" % (directory, exc.strerror or exc)) from None
    try:
        problem = _writable_problem(os.fstat(dir_fd), directory, "the trust directory",
                                    "chmod go-w %s" % shlex.quote(directory))
        if problem is not None:
            raise KeyFileError(problem)
        try:
            entries = sorted(os.listdir(dir_fd))
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
            data = _open_checked(path, "a trusted public key", lambda info, path=path: _writable_problem(
                info, path, "a trusted public key", "chmod 644 %s" % shlex.quote(path)), dir_fd=dir_fd, name=entry)
            trusted[name] = load_public_key(path, _text(data, path, "a 32-byte Ed25519 public key"))
        return trusted
    finally:
        os.close(dir_fd)


def generate_cluster_key():
    """A new cluster (keyring) key: base64 of 32 random bytes."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def load_keyring(path):
    """The cluster keys in a keyring file, primary first, as a list of bytes.

    One base64 key per line; blank lines and lines starting with '#' are
    ignored. Each key decodes to >= 16 bytes; duplicates and an empty file are
    refused, as is a link, a file owned by another user than root or the
    agent's, or one that others may read or its group write (checked on the
    open file).
    """
    def check(info):
        quoted = shlex.quote(path)
        problem = _owner_problem(info, path, "the keyring", "chown root:leaderd %s && chmod 640 %s"
                                 % (quoted, quoted))
        mode = stat.S_IMODE(info.st_mode)
        if problem is None and mode & 0o027:
            problem = ("%s: keyring is accessible by others or writable by its group (mode %04o); anyone who "
                       "reads it can forge packets. Run: chmod 640 %s" % (path, mode, quoted))
        return problem

    text = _text(_open_checked(path, "the cluster keyring", check), path, "the cluster keyring")
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
