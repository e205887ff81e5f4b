"""Key files are checked as they are opened (issue 11, item 6).

- The trust directory and its NAME.pub files: owned by root or by the
  agent's own user (its effective uid: an agent run from a checkout, or
  these tests as a normal user, owns its files), not writable by group or
  others, NAME.pub a regular file, not a link.
- NAME.key: opened with O_NOFOLLOW, owner and mode checked with fstat on
  the open descriptor; root:leaderd 0640 (what systemd/leaderd.tmpfiles
  makes) is accepted.

Real files throughout; the tests that give files to other users, or run a
process as another user, need root and skip with that reason otherwise.
"""

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

import pytest
import yaml

from agent import keys
from agent.localcluster import child_env, free_udp_port

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TMPFILES = os.path.join(REPO_ROOT, "systemd", "leaderd.tmpfiles")
SYSUSERS = os.path.join(REPO_ROOT, "systemd", "leaderd.sysusers")
NOBODY = 65534

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: gives files to other users (chown) "
                                                            "or runs a process as another user")


def _trusted(tmp_path, names=("node-a", "node-b")):
    trusted = tmp_path / "trusted"
    trusted.mkdir(mode=0o755)
    os.chmod(trusted, 0o755)
    for name in names:
        keys.keygen(name, str(tmp_path))
        os.replace(tmp_path / (name + ".pub"), trusted / (name + ".pub"))
    return trusted


def _refused(load, *fragments):
    with pytest.raises(keys.KeyFileError) as info:
        load()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- The trust directory -------------------------------------------------------


@pytest.mark.parametrize("mode, who", [(0o775, "its group"), (0o757, "others"), (0o777, "group and others"),
                                       (0o1777, "group and others")])
def test_a_group_or_world_writable_trust_directory_is_refused(tmp_path, mode, who):
    trusted = _trusted(tmp_path)
    os.chmod(trusted, mode)
    _refused(lambda: keys.load_trusted_dir(str(trusted)), str(trusted),
             "the trust directory is writable by %s (mode %04o)" % (who, mode),
             "whoever can write it decides which nodes may lead", "Run: chmod go-w %s" % trusted)
    os.chmod(trusted, 0o755)
    assert sorted(keys.load_trusted_dir(str(trusted))) == ["node-a", "node-b"]


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_a_group_or_world_writable_pub_file_is_refused(tmp_path, mode):
    trusted = _trusted(tmp_path)
    os.chmod(trusted / "node-b.pub", mode)
    _refused(lambda: keys.load_trusted_dir(str(trusted)), str(trusted / "node-b.pub"),
             "a trusted public key is writable by", "(mode %04o)" % mode, "Run: chmod 644 %s" % (trusted / "node-b.pub"))


def test_a_pub_file_that_is_a_link_is_refused(tmp_path):
    trusted = _trusted(tmp_path, names=("node-a",))
    keys.keygen("elsewhere", str(tmp_path))
    os.symlink(tmp_path / "elsewhere.pub", trusted / "node-x.pub")
    _refused(lambda: keys.load_trusted_dir(str(trusted)), str(trusted / "node-x.pub"), "is a symbolic link")


@needs_root
def test_a_trust_directory_or_pub_file_of_another_user_is_refused(tmp_path):
    trusted = _trusted(tmp_path)
    os.chown(trusted, NOBODY, NOBODY)
    _refused(lambda: keys.load_trusted_dir(str(trusted)), str(trusted),
             "the trust directory is owned by uid %d; it must be owned by root or by the user the agent runs "
             "as (uid 0)" % NOBODY, "Run: chown root:root %s" % trusted)
    os.chown(trusted, 0, 0)
    os.chown(trusted / "node-a.pub", NOBODY, NOBODY)
    _refused(lambda: keys.load_trusted_dir(str(trusted)), str(trusted / "node-a.pub"),
             "a trusted public key is owned by uid %d" % NOBODY)
    os.chown(trusted / "node-a.pub", 0, NOBODY)  # root's, whatever the group (it cannot write it)
    assert sorted(keys.load_trusted_dir(str(trusted))) == ["node-a", "node-b"]


def test_run_stops_naming_the_trust_directory(tmp_path):
    # A real `leaderd run`: a bad trust directory is a configuration error (exit 2) naming the key.
    trusted = _trusted(tmp_path, names=("solo",))
    os.chmod(trusted, 0o775)
    path = tmp_path / "leaderd.yaml"
    path.write_text(yaml.safe_dump({
        "node": {"name": "solo", "bind": "127.0.0.1:%d" % free_udp_port()},
        "election": {"signing_key_file": str(tmp_path / "solo.key"), "trusted_keys_dir": str(trusted)},
        "api": {"socket": str(tmp_path / "api.sock")}}))
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "run", "--config", str(path)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, env=child_env())
    assert proc.returncode == 2, proc.stderr
    assert "election.trusted_keys_dir: %s: the trust directory is writable by its group (mode 0775)" % trusted \
        in proc.stderr, proc.stderr
    assert not (tmp_path / "api.sock").exists()


# --- The private key ------------------------------------------------------------


def test_a_private_key_that_is_a_link_is_refused(tmp_path):
    key_path, _ = keys.keygen("node-a", str(tmp_path))
    link = tmp_path / "link.key"
    os.symlink(key_path, link)
    _refused(lambda: keys.load_private_key(str(link)), str(link), "is a symbolic link",
             "opened without following links")
    keys.load_private_key(key_path)  # the file itself is fine


def test_the_private_key_is_checked_on_the_open_file(tmp_path, monkeypatch):
    # No path-based check (stat, lstat, access) that a swap of the file after
    # it could get past: owner and mode come from fstat of the descriptor read.
    key_path, _ = keys.keygen("node-a", str(tmp_path))
    expected = keys.public_bytes(keys.load_private_key(key_path))

    class NoPathChecks:
        """agent.keys' view of os, without the calls that check a path rather than an open file."""

        def __getattr__(self, name):
            if name in ("stat", "lstat", "access"):
                def forbidden(*args, **kwargs):
                    raise AssertionError("a path-based check: os.%s%r" % (name, args))
                return forbidden
            return getattr(os, name)

    monkeypatch.setattr(keys, "os", NoPathChecks())
    assert keys.public_bytes(keys.load_private_key(key_path)) == expected
    os.chmod(key_path, 0o604)
    _refused(lambda: keys.load_private_key(key_path), "(mode 0604)")


def test_a_fifo_in_place_of_the_private_key_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "node-a.key"
    os.mkfifo(fifo, 0o600)
    _refused(lambda: keys.load_private_key(str(fifo)), str(fifo), "not a regular file")


@needs_root
def test_root_leaderd_0640_is_accepted_and_another_owner_refused(tmp_path):
    key_path, _ = keys.keygen("node-a", str(tmp_path))
    expected = keys.public_bytes(keys.load_private_key(key_path))
    os.chown(key_path, 0, NOBODY)         # root:GROUP, the service's group reads it
    os.chmod(key_path, 0o640)
    assert keys.public_bytes(keys.load_private_key(key_path)) == expected
    for mode in (0o660, 0o644, 0o670):   # group write, or others: never
        os.chmod(key_path, mode)
        _refused(lambda: keys.load_private_key(key_path), "(mode %04o)" % mode)
    os.chmod(key_path, 0o600)
    os.chown(key_path, NOBODY, NOBODY)
    _refused(lambda: keys.load_private_key(key_path), key_path,
             "the private key is owned by uid %d; it must be owned by root or by the user the agent runs as" % NOBODY,
             "chown root:leaderd")


def _load_as(uid, gid, key_path):
    """load_private_key(key_path) in a forked child whose effective uid and gid are uid, gid:
    "loaded HEX" (the public key) or "refused: MESSAGE"."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setegid(gid)
            os.seteuid(uid)
            try:
                out = "loaded " + keys.public_bytes(keys.load_private_key(key_path)).hex()
            except keys.KeyFileError as exc:
                out = "refused: %s" % exc
            os.write(write_end, out.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        out = handle.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    return out


@needs_root
def test_an_agent_not_running_as_root_takes_its_own_key_0600_not_0640(tmp_path):
    # A process running as another user (uid 65534): "root-owned" means
    # root or that user; its own key must be owner-only, as ssh wants.
    with tempfile.TemporaryDirectory(prefix="leaderd-keys-") as directory:
        os.chmod(directory, 0o755)
        key_path, _ = keys.keygen("node-a", directory)
        expected = "loaded " + keys.public_bytes(keys.load_private_key(key_path)).hex()
        os.chown(key_path, NOBODY, NOBODY)
        assert _load_as(NOBODY, NOBODY, key_path) == expected
        os.chmod(key_path, 0o400)
        assert _load_as(NOBODY, NOBODY, key_path) == expected
        os.chmod(key_path, 0o640)
        out = _load_as(NOBODY, NOBODY, key_path)
        assert out.startswith("refused: ") and "(mode 0640)" in out and "chmod 600" in out, out
        os.chown(key_path, 0, NOBODY)   # root:nogroup 0640, read through the group: the shipped layout
        assert _load_as(NOBODY, NOBODY, key_path) == expected
        os.chown(key_path, 1, NOBODY)   # neither root nor the agent's user (uid 1, daemon)
        out = _load_as(NOBODY, NOBODY, key_path)
        assert out.startswith("refused: ") and "owned by uid 1; it must be owned by root or by the user the " \
            "agent runs as (uid %d)" % NOBODY in out, out


@needs_root
def test_the_shipped_tmpfiles_make_the_key_root_leaderd_0640_and_it_is_accepted(tmp_path):
    sysusers, tmpfiles = shutil.which("systemd-sysusers"), shutil.which("systemd-tmpfiles")
    if sysusers is None or tmpfiles is None:
        pytest.skip("systemd-sysusers / systemd-tmpfiles are not installed (Debian package: systemd)")
    root = tmp_path / "root"
    etc = root / "etc" / "leaderd"
    etc.mkdir(parents=True)
    key_path, pub_path = keys.keygen("n1", str(etc))
    expected = keys.public_bytes(keys.load_private_key(key_path))
    os.chmod(key_path, 0o644)   # as an admin might leave it: the z line fixes it
    ring = etc / "keyring"
    ring.write_text(keys.generate_cluster_key() + "\n")
    ring.chmod(0o644)
    for argv in ([sysusers, "--root=%s" % root, SYSUSERS], [tmpfiles, "--root=%s" % root, "--create", TMPFILES]):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    gid = None
    with open(root / "etc" / "group") as handle:
        for line in handle:
            fields = line.split(":")
            if fields[0] == "leaderd":
                gid = int(fields[2])
    assert gid is not None
    info = os.stat(key_path)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, gid, 0o640)
    assert keys.public_bytes(keys.load_private_key(key_path)) == expected
    info = os.stat(ring)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, gid, 0o640)
    assert len(keys.load_keyring(str(ring))) == 1
    trusted = etc / "trusted"
    info = os.stat(trusted)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)
    os.replace(pub_path, trusted / "n1.pub")
    assert sorted(keys.load_trusted_dir(str(trusted))) == ["n1"]


# --- The keyring ------------------------------------------------------------------


def test_a_keyring_that_is_a_link_or_group_writable_is_refused(tmp_path):
    ring = tmp_path / "keyring"
    ring.write_text(keys.generate_cluster_key() + "\n")
    ring.chmod(0o640)
    assert len(keys.load_keyring(str(ring))) == 1
    link = tmp_path / "ring-link"
    os.symlink(ring, link)
    _refused(lambda: keys.load_keyring(str(link)), str(link), "is a symbolic link")
    ring.chmod(0o660)
    _refused(lambda: keys.load_keyring(str(ring)), "writable by its group (mode 0660)", "chmod 640")
