"""Where the agent's API socket is by default: one definition for the daemon's
config, the client and `--help`.

The daemon listens on RUNTIME_DIR/leaderd/leaderd.sock, RUNTIME_DIR being
$XDG_RUNTIME_DIR when set (a user's agent), else /run (the system service,
whose unit makes /run/leaderd with RuntimeDirectory=).
"""

import os

SYSTEM_RUNTIME_DIR = "/run"


def socket_in(runtime_dir):
    """The default API socket under runtime_dir: RUNTIME_DIR/leaderd/leaderd.sock."""
    return os.path.join(runtime_dir, "leaderd", "leaderd.sock")


SYSTEM_SOCKET_PATH = socket_in(SYSTEM_RUNTIME_DIR)  # /run/leaderd/leaderd.sock
# How --help and messages write the per-user default.
USER_SOCKET_PATH_TEXT = socket_in("$XDG_RUNTIME_DIR")  # $XDG_RUNTIME_DIR/leaderd/leaderd.sock
