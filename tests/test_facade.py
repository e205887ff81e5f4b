"""The shells use the core through the Node facade only (docs/ARCHITECTURE.md).

The daemon, the simulator and the board shell may call Node's public
methods and read the few documented attributes of the facade itself; they
never read or write an attribute of a component inside it (the election,
the codec, the member table, ...), never touch a private name, and never
assign to the node. The check reads the shells' sources: every attribute
access on an expression that names a node (`node`, `self.node`,
`slot.node`, ...).
"""

import ast
import os
import re

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What a shell may read from a Node that is not a method: the facade's own
# documented state (agent/core/node.py, "Queries").
FACADE_ATTRIBUTES = {
    "name", "address", "cluster", "profile", "incarnation", "priority", "eligible",
    "joined", "left", "insecure", "authenticated", "last_error", "tags",
}


# The modules that hold a core Node (test_every_module_holding_a_node_is_checked
# keeps this list whole).
SHELLS = ("agent/daemon.py", "agent/sim/__init__.py", "agent/sim/network.py", "agent/sim/nodes.py",
          "agent/sim/scenarios.py", "micropython/leaderd.py", "micropython/leaderd_boot.py")


def _sources(folders=("agent", "agent/sim", "micropython")):
    out = []
    for folder in folders:
        for name in sorted(os.listdir(os.path.join(REPO_ROOT, folder))):
            if name.endswith(".py"):
                rel = folder + "/" + name
                with open(os.path.join(REPO_ROOT, rel)) as handle:
                    out.append((rel, handle.read()))
    return out


def _names_a_node(expr):
    # node, self.node, slot.node (not cfg.node, the config's node section).
    if isinstance(expr, ast.Name):
        return expr.id == "node"
    return isinstance(expr, ast.Attribute) and expr.attr == "node" \
        and not (isinstance(expr.value, ast.Name) and expr.value.id in ("cfg", "config"))


def _public_methods():
    with open(os.path.join(REPO_ROOT, "agent", "core", "node.py")) as handle:
        tree = ast.parse(handle.read())
    for item in tree.body:
        if isinstance(item, ast.ClassDef) and item.name == "Node":
            return set(f.name for f in item.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("_"))
    raise AssertionError("no class Node")


def reaches_in(source, allowed):
    """[(line, text)] of the attribute uses on a node that the facade does not offer."""
    tree = ast.parse(source)
    wrong = []
    for item in ast.walk(tree):
        if isinstance(item, ast.Attribute) and _names_a_node(item.value):
            if item.attr not in allowed or isinstance(item.ctx, (ast.Store, ast.Del)):
                wrong.append((item.lineno, item.col_offset, ast.unparse(item)))
    return [(line, text) for line, _, text in sorted(wrong)]


def test_no_shell_reaches_past_the_facade():
    allowed = _public_methods() | FACADE_ATTRIBUTES
    assert {"receive_datagram", "handle_timer", "term", "leader", "set_preempt", "counters"} <= allowed
    wrong = []
    for rel, source in _sources():
        if rel in SHELLS:
            for line, text in reaches_in(source, allowed):
                wrong.append("%s:%d %s" % (rel, line, text))
    assert wrong == [], "\n".join(wrong)


def test_every_module_holding_a_node_is_checked():
    holding = [rel for rel, source in _sources()
               if re.search(r"self\.node\b|slot\.node\b|core\.node import", source)]
    assert sorted(holding) == sorted(SHELLS), holding


def test_the_check_sees_a_shell_reaching_in():
    allowed = _public_methods() | FACADE_ATTRIBUTES
    bad = ("def f(self, node):\n"
           "    node.election.preempt = True\n"
           "    x = self.node.codec.keyring\n"
           "    node._dirty = True\n"
           "    node.priority = 3\n")
    assert [t for _, t in reaches_in(bad, allowed)] == [
        "node.election", "self.node.codec", "node._dirty", "node.priority"]
    assert reaches_in("def f(node):\n    return node.leader(), node.term(), node.name\n", allowed) == []
