"""What signed membership and heartbeats cost: wire bytes and CPU per node per second.

    python bench/integrity_costs.py [--nodes 30,100] [--duration 120s] [--profile lan]

For each N, two `leaderd simulate --scenario steady` runs with the same seed:
with real Ed25519 keys (every member signs its Alive statements, the
leader signs a heartbeat every claim interval, everyone checks them) and
`--insecure` (nothing signed; the wire format is the same, signature fields
empty). The difference is the cost of the signatures: bytes and datagrams
per node per second, and signature checks per node per second. The CPU
figure multiplies the checks (and the leader's signatures) by the time of
one Ed25519 operation with `cryptography` on this machine, timed here.

Each run's exact command is printed, so every figure can be reproduced.
Figures, not pass/fail.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def simulate(nodes, duration, profile, seed, insecure):
    command = [sys.executable, "-m", "agent.cli", "simulate", "--nodes", str(nodes), "--scenario", "steady",
               "--duration", duration, "--profile", profile, "--seed", str(seed), "--json"]
    if insecure:
        command.append("--insecure")
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return " ".join(command[2:]), json.loads(out.stdout)


def ed25519_costs(rounds=2000):
    """(sign, verify) seconds per operation with cryptography's Ed25519."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    data = b"leaderd/claim/v2" + bytes(40)
    start = time.perf_counter()
    for _ in range(rounds):
        signature = key.sign(data)
    sign = (time.perf_counter() - start) / rounds
    start = time.perf_counter()
    for _ in range(rounds):
        public.verify(signature, data)
    verify = (time.perf_counter() - start) / rounds
    return sign, verify


def seconds(text):
    return float(text[:-1]) * (60 if text.endswith("m") else 1) if text[-1] in "sm" else float(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="30,100", help="comma-separated cluster sizes (default 30,100)")
    parser.add_argument("--duration", default="120s", help="virtual time per run (default 120s)")
    parser.add_argument("--profile", default="lan", choices=("lan", "wan", "local"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sign_s, verify_s = ed25519_costs()
    print("Ed25519 with cryptography here: sign %.1f us, verify %.1f us" % (sign_s * 1e6, verify_s * 1e6))
    rows = []
    for n in [int(x) for x in args.nodes.split(",")]:
        secure_cmd, secure = simulate(n, args.duration, args.profile, args.seed, False)
        plain_cmd, plain = simulate(n, args.duration, args.profile, args.seed, True)
        span = seconds(args.duration)
        checks = secure.get("signature_checks", 0) / n / span
        row = {
            "nodes": n, "profile": args.profile, "duration": args.duration,
            "bytes_per_node_s": secure["bytes_per_node_s"], "bytes_per_node_s_unsigned": plain["bytes_per_node_s"],
            "signature_bytes_per_node_s": round(secure["bytes_per_node_s"] - plain["bytes_per_node_s"], 1),
            "msgs_per_node_s": secure["msgs_per_node_s"], "msgs_per_node_s_unsigned": plain["msgs_per_node_s"],
            "checks_per_node_s": round(checks, 3),
            "check_cpu_us_per_node_s": round(checks * verify_s * 1e6, 1),
            "leader_changes": secure["leader_changes"],
        }
        rows.append(row)
        print("N=%d (%s, %s): %.0f B/s per node signed vs %.0f unsigned (+%.0f), %.2f vs %.2f datagrams/s, "
              "%.2f checks/s per node (~%.0f us CPU/s)" % (
                  n, args.profile, args.duration, row["bytes_per_node_s"], row["bytes_per_node_s_unsigned"],
                  row["signature_bytes_per_node_s"], row["msgs_per_node_s"], row["msgs_per_node_s_unsigned"],
                  row["checks_per_node_s"], row["check_cpu_us_per_node_s"]))
        print("  %s\n  %s" % (secure_cmd, plain_cmd))
    print(json.dumps({"ed25519_sign_us": round(sign_s * 1e6, 1), "ed25519_verify_us": round(verify_s * 1e6, 1),
                      "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
