# Freezes the leaderd board agent into MicroPython firmware: the protocol
# core (agent/core, package layout kept) and the board modules. Frozen
# bytecode runs from flash, so the heap holds only the agent's state
# (docs/BOARDS.md has the figures). main.py and the JSON configs stay on
# the filesystem.
#
# Use it from a board's manifest, after the board's own modules, e.g. for
# a file my_manifest.py:
#
#   include("$(PORT_DIR)/boards/manifest.py")                # ESP32_GENERIC
#   include("$(BOARD_DIR)/manifest.py")                      # RPI_PICO_W
#   include("/path/to/leaderd/micropython/manifest.py")
#
# and build with `make BOARD=... FROZEN_MANIFEST=/path/to/my_manifest.py`
# (micropython/README.md has the whole recipe).

package(
    "agent",
    files=(
        "__init__.py",
        "core/__init__.py",
        "core/auth.py",
        "core/awareness.py",
        "core/broadcast.py",
        "core/election.py",
        "core/events.py",
        "core/guard.py",
        "core/membership.py",
        "core/nameset.py",
        "core/node.py",
        "core/profile.py",
        "core/rand.py",
        "core/rules.py",
        "core/suspicion.py",
        "core/wire.py",
    ),
    base_path="..",
)
module("leaderd.py")
module("leaderd_boot.py")
module("leaderd_main.py")
module("leaderd_config.py")
module("leaderd_state.py")
module("wifi.py")
module("ed25519.py")
module("sha512.py")
