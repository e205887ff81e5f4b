"""The systemd packaging: systemd/leaderd.service, leaderd.sysusers, leaderd.tmpfiles.

Three layers:

1. The unit file parsed as systemd reads it (sections, repeated keys, empty
   assignments that reset a list), checked for the directives the daemon
   and docs/OPERATIONS.md rely on.
2. The claims behind its hardening, checked on the real agent: the socket
   default lies in RuntimeDirectory=, a bad config exits with the status that
   RestartPreventExitStatus= names, and the agent (Ed25519, HMAC, YAML, a
   hook) runs under the very seccomp rules by which systemd implements
   MemoryDenyWriteExecute=yes.
3. systemd's own tools, when installed (Debian package `systemd`):
   `systemd-analyze verify`, `systemd-analyze security --offline=yes`
   (overall exposure must stay <= 2.0), and systemd-sysusers /
   systemd-tmpfiles applied to a scratch root.
"""

import ctypes
import os
import platform
import re
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT = os.path.join(ROOT, "systemd", "leaderd.service")
SYSUSERS = os.path.join(ROOT, "systemd", "leaderd.sysusers")
TMPFILES = os.path.join(ROOT, "systemd", "leaderd.tmpfiles")

# The target for `systemd-analyze security` (0 = fully locked down, 10 = unprotected).
MAX_EXPOSURE = 2.0


# --- 1. the unit file as systemd reads it ------------------------------------

def parse_unit(path):
    """{section: {key: [values]}} as systemd reads a unit file.

    Comments (# or ;) and blank lines are skipped, a trailing backslash
    continues a line, a key may repeat (its values accumulate) and an empty
    assignment (``Key=``) resets the list, as systemd does for list settings.
    """
    sections = {}
    current = None
    pending = ""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for lineno, raw in enumerate(lines, 1):
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, "%s:%d: assignment outside a section" % (path, lineno)
        assert "=" in line, "%s:%d: not KEY=VALUE: %r" % (path, lineno, line)
        key, value = (part.strip() for part in line.split("=", 1))
        values = current.setdefault(key, [])
        if value:
            values.append(value)
        else:
            values.clear()
            current[key] = values
    return sections


@pytest.fixture(scope="module")
def service():
    return parse_unit(UNIT)["Service"]


def one(service, key):
    values = service.get(key)
    assert values, "leaderd.service: %s= is not set" % key
    assert len(values) == 1, "leaderd.service: %s= is set %d times: %r" % (key, len(values), values)
    return values[0]


def seconds(text):
    """A systemd time span ("45s", "1min 30s", "500ms", a bare number of seconds) in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    assert parts, "not a time span: %r" % text
    for number, unit in parts:
        total += float(number) * units[unit or "s"]
    return total


def test_unit_has_the_three_sections_systemd_needs():
    sections = parse_unit(UNIT)
    assert set(sections) == {"Unit", "Service", "Install"}
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in sections["Unit"]["After"]


def test_type_notify_and_only_the_main_process_may_notify(service):
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    assert seconds(one(service, "WatchdogSec")) > 0


def test_execstart_runs_leaderd_run_with_the_etc_config(service):
    argv = shlex.split(one(service, "ExecStart"))
    assert os.path.isabs(argv[0]) and os.path.basename(argv[0]) == "leaderd"
    assert argv[1:] == ["run", "--config", "/etc/leaderd/leaderd.yaml"]


def test_reload_sends_sighup_to_the_main_process(service):
    assert shlex.split(one(service, "ExecReload")) == ["/bin/kill", "-HUP", "$MAINPID"]


def test_restart_policy(service):
    assert one(service, "Restart") == "on-failure"
    # leaderd run exits 2 on a bad config: restarting cannot fix that.
    assert one(service, "RestartPreventExitStatus") == "2"


def test_stop_lets_the_agent_resign_and_run_its_demotion_hooks(service):
    # SIGTERM to the agent alone (its hooks are not killed with it), and time
    # for the resignation plus the hooks it queues (hooks.timeout, 30 s by default).
    from agent import config
    assert one(service, "KillMode") == "mixed"
    assert seconds(one(service, "TimeoutStopSec")) > config.default_config().hooks.timeout_s


def test_runs_as_leaderd_with_its_directories(service):
    assert one(service, "User") == "leaderd"
    assert one(service, "Group") == "leaderd"
    assert "DynamicUser" not in service  # key files are owned by a fixed user
    assert one(service, "RuntimeDirectory") == "leaderd"
    assert one(service, "RuntimeDirectoryMode") == "0755"
    assert one(service, "ConfigurationDirectory") == "leaderd"
    assert one(service, "UMask") == "0077"


def test_the_default_api_socket_lies_in_the_runtime_directory(service):
    # A system service has no XDG_RUNTIME_DIR: the daemon's default socket
    # must then be under RuntimeDirectory=, or the agent could not create it
    # (ProtectSystem=strict makes everything else read-only).
    from agent import config
    path = config.default_socket_path({})
    assert os.path.dirname(path) == os.path.join("/run", one(service, "RuntimeDirectory"))


def test_no_privileges_at_all(service):
    assert one(service, "NoNewPrivileges") == "yes"
    # Present and empty: no capability in the bounding set, none ambient.
    assert service.get("CapabilityBoundingSet") == []
    assert service.get("AmbientCapabilities") == []
    assert one(service, "RestrictSUIDSGID") == "yes"


@pytest.mark.parametrize("key, value", [
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("ProcSubset", "pid"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("SystemCallArchitectures", "native"),
])
def test_sandboxing_directive(service, key, value):
    assert one(service, key) == value


def test_sockets_unix_and_ip_only_and_no_ip_allow_list(service):
    assert one(service, "RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    # Deliberately absent: the peers are wherever the site's cluster is.
    assert "IPAddressDeny" not in service and "IPAddressAllow" not in service
    assert "PrivateNetwork" not in service


def test_system_call_filter_is_an_allow_list_minus_privileged_and_resources(service):
    assert service["SystemCallFilter"][0] == "@system-service"
    denied = [v[1:].split() for v in service["SystemCallFilter"][1:] if v.startswith("~")]
    assert sorted(sum(denied, [])) == ["@privileged", "@resources"]
    assert one(service, "SystemCallErrorNumber") == "EPERM"


# --- 2. the claims behind the hardening, on the real agent -------------------

def test_a_bad_config_exits_with_the_status_that_stops_restarts(tmp_path, service):
    from agent import daemon
    bad = tmp_path / "leaderd.yaml"
    bad.write_text("node:\n  priority: 999\n")
    assert daemon.run(str(bad)) == int(one(service, "RestartPreventExitStatus"))


# systemd implements MemoryDenyWriteExecute=yes with these seccomp rules
# (seccomp_memory_deny_write_execute() in systemd's src/shared/seccomp-util.c):
# mmap with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect with PROT_EXEC and
# shmat with SHM_EXEC fail with EPERM. The prelude below installs the same
# rules in a fresh interpreter, then runs the real agent under them.
_MDWE_ARCH = {
    # machine: (AUDIT_ARCH_*, mmap, mprotect, pkey_mprotect, shmat)
    "x86_64": (0xC000003E, 9, 10, 329, 30),
    "aarch64": (0xC00000B7, 222, 226, 288, 196),
}

# The tail of a seccomp prelude (its filter in `prog`): installs it, or exits
# naming prctl(PR_SET_SECCOMP) when this kernel has none (tests skip then).
# %-formatted with the prelude it ends, hence the %%.
SECCOMP_INSTALL = textwrap.dedent("""
    raw = b"".join(struct.pack("HBBI", *insn) for insn in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fprog = Prog(len(prog), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:                # PR_SET_NO_NEW_PRIVS
        sys.exit("prctl(PR_SET_NO_NEW_PRIVS): errno %%d" %% ctypes.get_errno())
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:   # PR_SET_SECCOMP, FILTER
        sys.exit("prctl(PR_SET_SECCOMP): errno %%d" %% ctypes.get_errno())
""")

MDWE_PRELUDE = textwrap.dedent("""
    import ctypes, struct, sys
    AUDIT_ARCH, NR_MMAP, NR_MPROTECT, NR_PKEY_MPROTECT, NR_SHMAT = %r
    PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
    LD_W_ABS, JEQ_K, AND_K, RET_K = 0x20, 0x15, 0x54, 0x06
    ALLOW, DENY = 0x7FFF0000, 0x00050000 | 1          # SECCOMP_RET_ERRNO | EPERM
    ARG2 = 16 + 2 * 8                                  # seccomp_data.args[2], low word
    prog = [
        (LD_W_ABS, 0, 0, 4), (JEQ_K, 0, 14, AUDIT_ARCH),            # 0-1: other ABI: allow
        (LD_W_ABS, 0, 0, 0),                                          # 2: syscall number
        (JEQ_K, 3, 0, NR_MMAP), (JEQ_K, 5, 0, NR_MPROTECT),          # 3-4
        (JEQ_K, 4, 0, NR_PKEY_MPROTECT), (JEQ_K, 6, 9, NR_SHMAT),    # 5-6
        (LD_W_ABS, 0, 0, ARG2), (AND_K, 0, 0, PROT_WRITE | PROT_EXEC),  # 7-8: mmap
        (JEQ_K, 7, 6, PROT_WRITE | PROT_EXEC),                        # 9
        (LD_W_ABS, 0, 0, ARG2), (AND_K, 0, 0, PROT_EXEC),             # 10-11: mprotect
        (JEQ_K, 4, 3, PROT_EXEC),                                     # 12
        (LD_W_ABS, 0, 0, ARG2), (AND_K, 0, 0, SHM_EXEC),              # 13-14: shmat
        (JEQ_K, 1, 0, SHM_EXEC),                                      # 15
        (RET_K, 0, 0, ALLOW), (RET_K, 0, 0, DENY),                    # 16-17
    ]
""") + SECCOMP_INSTALL + textwrap.dedent("""
    import mmap
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        pass
    else:
        sys.exit("the W^X filter is not in effect")
""")


def _mdwe_prelude():
    if platform.system() != "Linux" or platform.machine() not in _MDWE_ARCH:
        pytest.skip("the MemoryDenyWriteExecute emulation knows Linux x86_64 and aarch64 only")
    return MDWE_PRELUDE % (_MDWE_ARCH[platform.machine()],)


def test_the_mdwe_emulation_refuses_what_systemd_refuses():
    # ctypes' own callbacks use libffi's static trampolines where libffi has
    # them; the check that matters is that W+X memory is refused, which the
    # prelude asserts before anything else runs.
    code = _mdwe_prelude() + "print('filter active')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and "prctl(PR_SET_SECCOMP)" in proc.stderr:
        pytest.skip("seccomp filters are not available here: %s" % proc.stderr.strip())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "filter active"


@pytest.mark.slow
def test_the_agent_runs_under_memory_deny_write_execute(tmp_path):
    """The real agent with a signing key, trusted keys, a keyring, a hook and a
    health check: it signs, verifies, authenticates packets, parses YAML and
    starts programs, all under the W^X rules of MemoryDenyWriteExecute=yes."""
    prelude = _mdwe_prelude()
    from agent.localcluster import Cluster

    hook_out = tmp_path / "hook.out"
    hook = tmp_path / "hook.sh"
    hook.write_text('#!/bin/sh\necho "$LEADERD_EVENT $LEADERD_TERM" >> "%s"\n' % hook_out)
    hook.chmod(0o755)
    extra = {"hooks": {"on_elected": [str(hook)]},
             "health": {"command": ["/bin/true"], "interval": "1s", "timeout": "1s"},
             "log": {"level": "debug"}}
    with Cluster(tmp_path / "agent", 1, names=["solo"], priorities=[100], cluster_name="mdwe",
                 extra_config=extra) as c:
        os.chmod(c.keyring_path, 0o640)  # as the package installs it: root:leaderd
        code = prelude + "from agent.cli import main\nsys.exit(main(['run', '--config', %r]))\n" % c.config_path(0)
        c.start(0, argv=[sys.executable, "-c", code], timeout=20)
        c.wait_for(lambda: hook_out.exists() and c.client(0).leader()["is_leader"], 20,
                   "solo to lead and run its on_elected hook")
        leader = c.client(0).leader()
        assert leader["leader"] == "solo" and leader["insecure"] is False, leader
        assert hook_out.read_text().startswith("on_elected ")
        assert c.client(0).status()["authenticated"] is True
        rc = c.kill(0, signal.SIGTERM, timeout=20)
        text = c.log_text(0)
    assert rc == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]


# --- 3. systemd's own tools ----------------------------------------------------

def _systemd_analyze():
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd); "
                    "the unit is not checked by systemd itself")
    return exe


def _complaints_about(unit_path, stderr):
    """The lines of systemd's output that are about the unit file itself."""
    name = os.path.basename(unit_path)
    return [line for line in stderr.splitlines() if unit_path in line or name in line]


def test_systemd_analyze_security_exposure_is_at_most_2(tmp_path):
    exe = _systemd_analyze()
    proc = subprocess.run([exe, "security", "--offline=yes", "--no-pager", UNIT],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and re.search(r"unrecognized option|unknown option", proc.stderr):
        pytest.skip("this systemd-analyze has no --offline (systemd < 250): %s" % proc.stderr.strip())
    # An unknown or misspelled directive is only a warning to systemd, and
    # silently drops that protection: any complaint about the file fails.
    assert _complaints_about(UNIT, proc.stderr) == [], proc.stderr
    match = re.search(r"Overall exposure level for leaderd\.service:\s*(\d+(?:\.\d+)?)", proc.stdout)
    assert match, "no overall exposure level in:\n%s\n%s" % (proc.stdout, proc.stderr)
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, "exposure %.1f > %.1f:\n%s" % (exposure, MAX_EXPOSURE, proc.stdout)


def test_systemd_analyze_verify(tmp_path):
    """`systemd-analyze verify` on a copy whose ExecStart= names an executable
    that exists here: verify refuses a unit whose binary is missing, and
    /usr/local/bin/leaderd exists only on an installed machine."""
    exe = _systemd_analyze()
    stub = tmp_path / "leaderd"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = open(UNIT, encoding="utf-8").read()
    text = re.sub(r"(?m)^ExecStart=/usr/local/bin/leaderd ", "ExecStart=%s " % stub, text)
    if not os.access("/bin/kill", os.X_OK):
        # ExecReload=/bin/kill: procps is on every Debian / Raspberry Pi OS
        # install, not always in a minimal CI image.
        text = re.sub(r"(?m)^ExecReload=/bin/kill ", "ExecReload=%s " % stub, text)
    copy = tmp_path / "leaderd.service"
    copy.write_text(text)
    proc = subprocess.run([exe, "verify", "--man=no", str(copy)],
                          capture_output=True, text=True, timeout=120)
    complaints = _complaints_about(str(copy), proc.stderr + proc.stdout)
    assert complaints == [], proc.stderr
    if proc.returncode != 0:
        pytest.skip("systemd-analyze verify does not work in this environment (exit %d): %s"
                    % (proc.returncode, proc.stderr.strip()[:500]))


def _need_root_and(tool):
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip("%s is not installed (Debian package: systemd)" % tool)
    if os.geteuid() != 0:
        pytest.skip("%s --root must run as root to give files to the leaderd user" % tool)
    return exe


def _passwd_entry(root, name):
    with open(os.path.join(root, "etc", "passwd")) as handle:
        for line in handle:
            fields = line.rstrip("\n").split(":")
            if fields[0] == name:
                return fields
    return None


def test_sysusers_and_tmpfiles_snippets_on_a_scratch_root(tmp_path):
    sysusers = _need_root_and("systemd-sysusers")
    tmpfiles = _need_root_and("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc" / "leaderd").mkdir(parents=True)
    # Secrets written with the wrong modes, as an admin might: the z lines fix them.
    (root / "etc" / "leaderd" / "n1.key").write_text("x\n")
    (root / "etc" / "leaderd" / "n1.key").chmod(0o644)
    (root / "etc" / "leaderd" / "keyring").write_text("x\n")
    (root / "etc" / "leaderd" / "keyring").chmod(0o644)

    proc = subprocess.run([sysusers, "--root=%s" % root, SYSUSERS], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    entry = _passwd_entry(str(root), "leaderd")
    assert entry is not None, open(root / "etc" / "passwd").read()
    uid, gid, home, shell = int(entry[2]), int(entry[3]), entry[5], entry[6]
    assert 0 < uid < 1000 and home == "/var/lib/leaderd" and shell.endswith("nologin")

    proc = subprocess.run([tmpfiles, "--root=%s" % root, "--create", TMPFILES],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _complaints_about(TMPFILES, proc.stderr) == [], proc.stderr

    def owner_mode(rel):
        st = os.stat(root / rel)
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)

    assert owner_mode("etc/leaderd") == (0, gid, 0o750)
    assert owner_mode("etc/leaderd/trusted") == (0, 0, 0o755)
    assert owner_mode("etc/leaderd/n1.key") == (0, gid, 0o640)    # root:leaderd 0640 (issue 11, item 6)
    assert owner_mode("etc/leaderd/keyring") == (0, gid, 0o640)
