"""The rules of a config: names, limits, durations, addresses and keys, once for every shell.

The daemon's YAML config (agent/config.py), its key files (agent/keys.py)
and the board's JSON config (micropython/leaderd_config.py) check their
values here, so a value means the same, and is refused with the same words,
wherever it is written (tests/test_config_parity.py holds them to it). Each
check raises ValueError whose text says what is allowed, in the daemon's
words, or returns a problem (a phrase) or None; each shell adds the key and
the value in its own file's notation.

Nothing here runs once the agent has started: a board loads this module
with its config and drops it after (micropython/main.py). So it imports
only wire (which the agent keeps anyway), and on MicroPython it never
indexes or iterates over a str: that interns every character it meets, for
good. Text is looked at as its UTF-8 bytes.
"""

import binascii

from agent.core import wire

# Integer fields and their limits: (field, lowest, highest, what the number
# means). Any other field of agent.core.profile is a count, 1..1000.
_LIMITS = (
    ("priority", 0, 255, " (0 = never leads)"),
    ("mtu_bytes", 512, 65000, " (bytes per datagram)"),  # agent.core.profile's own bounds
    ("rise", 1, 100, " (passing checks in a row)"),      # health.rise and health.fall (the daemon's)
    ("fall", 1, 100, " (failing checks in a row)"),
    ("max_members", 2, 65536, " (members kept, this node included)"),  # cluster.max_members
)

KEY_BYTES = 32              # an Ed25519 seed or public key
MIN_CLUSTER_KEY_BYTES = 16  # agent.core.auth.HmacKey's lower bound

_NAME_RULE = ("expected a name of 1..64 UTF-8 bytes without spaces, '/' or control characters, not starting "
              "with '.' (and not '*', which pings use)")
_DURATION_RULE = ('expected a number with a unit ms, s, m or h (e.g. "250ms", "2s", "10m", "1h30m"); '
                  "a bare number means seconds")
_HOST_PORT_RULE = "expected host:port, e.g. 192.168.1.10:7946, pi-garage.local:7946 or [fd00::1]:7946"

_UNITS = ((b"ms", 1), (b"s", 1000), (b"m", 60000), (b"h", 3600000))  # "ms" before "m"
# White space as CPython's str.isspace() has it, beyond ASCII and U+0085,
# U+00A0 (tested apart): U+1680, U+2028, U+2029, U+202F, U+205F, U+3000,
# and U+2000..U+200A (E2 80 80..8A, tested apart too).
_SPACES = (b"\xe1\x9a\x80", b"\xe2\x80\xa8", b"\xe2\x80\xa9", b"\xe2\x80\xaf", b"\xe2\x81\x9f",
           b"\xe3\x80\x80")


# --- Text ----------------------------------------------------------------------


def _utf8(value):
    """The UTF-8 bytes of value, or None when it is not a str of valid UTF-8.

    CPython cannot encode a lone surrogate; MicroPython can (its JSON reads
    "\\ud800" into one) and decodes overlong and out-of-range forms: both
    are refused here, so both runtimes take the same texts.
    """
    if not isinstance(value, str):
        return None
    try:
        raw = value.encode("utf-8")
    except UnicodeError:
        return None
    prev = 0
    for b in raw:
        if b == 0xC0 or b == 0xC1 or b >= 0xF5 or (prev == 0xE0 and b < 0xA0) or (prev == 0xED and b >= 0xA0) \
                or (prev == 0xF0 and b < 0x90) or (prev == 0xF4 and b >= 0x90):
            return None
        prev = b
    return raw


def _space(raw, start):
    """The length in bytes of the white space character at raw[start] (valid UTF-8), or 0."""
    b = raw[start]
    if b == 32 or 9 <= b <= 13 or 28 <= b <= 31:
        return 1
    if b < 0xC2:
        return 0
    two = raw[start:start + 2]
    if two == b"\xc2\x85" or two == b"\xc2\xa0":
        return 2
    three = raw[start:start + 3]
    if three in _SPACES or (two == b"\xe2\x80" and len(three) == 3 and three[2] <= 0x8A):
        return 3
    return 0


def _strip(raw):
    """raw without the white space around it (CPython's str.strip(), on both runtimes)."""
    start = 0
    end = 0
    i = 0
    while i < len(raw):
        width = _space(raw, i)
        if width:
            if start == i:
                start = i + width
        else:
            width = 1
            end = i + 1
        i += width
    return raw[start:end] if end > start else b""


def name_problem(value):
    """What is wrong with value as a node or cluster name (_NAME_RULE), or None.

    wire.name_error's rule (1..64 bytes of UTF-8, no control characters, not
    "*") and, because a name is also a file name (NAME.key, NAME.pub) and a
    word in logs and tables: no white space, no '/', no leading '.'.
    """
    raw = _utf8(value)
    if raw is None or wire.name_error(value) is not None or raw[0] == 46 or b"/" in raw:
        return _NAME_RULE
    for i in range(len(raw)):
        if _space(raw, i):
            return _NAME_RULE
    return None


def _text_bytes(value):
    """The length in UTF-8 bytes of value, or -1 when it is not a str of valid UTF-8."""
    raw = _utf8(value)
    return -1 if raw is None else len(raw)


def path_problem(value):
    """What is wrong with value as a file path, or None."""
    raw = _utf8(value)
    if not raw or b"\0" in raw:
        return "expected a file path"
    return None


# --- Numbers and choices -------------------------------------------------------------


def integer(value, what):
    """value when it is an int (not a bool) within the limits of the field what names
    ("priority", "mtu_bytes", a profile's count, ...); ValueError otherwise."""
    low, high, meaning = 1, 1000, None
    for limits in _LIMITS:
        if limits[0] == what:
            low, high, meaning = limits[1:]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problem = "expected an integer %d..%d" % (low, high)
        raise ValueError(problem + meaning if meaning else problem)
    return value


def choice(value, names):
    """The one of names (lower-case ASCII words) that value names, in any case; ValueError otherwise."""
    raw = _utf8(value)
    # ASCII only: str.lower() differs between the runtimes beyond it.
    if raw is not None and len(raw) == len(value) and value.lower() in names:
        return value.lower()
    raise ValueError("expected one of: " + ", ".join(names))


# --- Durations ---------------------------------------------------------------------


def duration_ms(value, min_ms=0, bare_ms=False):
    """A duration as int milliseconds: "250ms", "2s", "1m30s", "1.5h", or a number of seconds.

    A str is one or more "<number><unit>" parts (ms, s, m, h), summed the
    way Go's time.ParseDuration reads "1m30s", or a bare number, which means
    seconds (DESIGN.md); an int or float is seconds too. Exact: decimal
    arithmetic on the digits as written, never floats (a board's are single
    precision), and a total finer than a millisecond is refused. min_ms:
    the shortest duration allowed. bare_ms: an int is milliseconds, not
    seconds (a "*_ms" gossip field). Raises ValueError with the rule broken.
    """
    if bare_ms and isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError("expected a positive number of milliseconds or a duration such as \"500ms\"")
        return value
    if isinstance(value, bool):
        raise ValueError(_DURATION_RULE)
    if isinstance(value, (int, float)):
        if value - value != 0:  # nan or infinite
            raise ValueError("must be a finite number of seconds")
        if value < 0:
            raise ValueError("must not be negative")
        if isinstance(value, int):
            ms = value * 1000
        else:
            # The shortest decimal that reads back as this float (its repr on
            # both runtimes, "1e-05" and "1e+16" included), taken exactly.
            raw = repr(abs(value)).encode()  # abs: -0.0
            cut = raw.find(b"e")
            ms = _decimal_ms(raw, 0) if cut < 0 else _decimal_ms(raw[:cut], int(raw[cut + 1:]))
    else:
        raw = _utf8(value)
        raw = None if raw is None else _strip(raw)
        if not raw:
            raise ValueError(_DURATION_RULE)
        if raw[0] == 45:  # "-"
            raise ValueError("must not be negative")
        ms = _decimal_ms(raw, 0)  # a bare number: seconds
        if ms is None:
            ms = _parts_ms(raw)
    if ms < min_ms:
        raise ValueError("expected a duration of at least %dms" % min_ms)
    return ms


def _number_end(raw, start):
    """The end of the decimal number ("5", "1.5", "5.", ".5") at raw[start:], or start when there is none."""
    end = start
    digits = 0
    dot = False
    while end < len(raw) and (48 <= raw[end] <= 57 or (raw[end] == 46 and not dot)):  # 0-9 .
        if raw[end] == 46:
            dot = True
        else:
            digits += 1
        end += 1
    return end if digits else start


def _decimal_ms(raw, k):
    """The milliseconds in raw * 10**k seconds when all of raw is one decimal number
    (an int), else None; ValueError when that is finer than a millisecond."""
    if _number_end(raw, 0) != len(raw):
        return None
    dot = raw.find(b".")
    if dot >= 0:
        k -= len(raw) - dot - 1
        raw = raw[:dot] + raw[dot + 1:]
    return _exact(int(raw) * 1000, k)


def _exact(value, k):
    """value * 10**k as an int; ValueError when that has a fraction (of a millisecond)."""
    if k >= 0:
        return value * 10 ** k
    if value % 10 ** -k:
        raise ValueError("finer than a millisecond (the smallest unit is 1ms)")
    return value // 10 ** -k


def _parts_ms(raw):
    """The sum of the "<number><unit>" parts that make up all of raw; ValueError otherwise."""
    total = 0  # in 10**-k ms, k the most decimals so far: "0.5ms0.5ms" is exactly 1 ms
    k = 0
    start = 0
    while start < len(raw):
        end = _number_end(raw, start)
        scale = 0
        if end > start:
            for unit, ms in _UNITS:
                if not scale and raw[end:end + len(unit)] == unit:
                    scale = ms
                    after = end + len(unit)
        if not scale:
            raise ValueError(_DURATION_RULE)
        number = raw[start:end]
        dot = number.find(b".")
        decimals = 0
        if dot >= 0:
            decimals = len(number) - dot - 1
            number = number[:dot] + number[dot + 1:]
        if decimals > k:
            total *= 10 ** (decimals - k)
            k = decimals
        total += int(number) * scale * 10 ** (k - decimals)
        start = after
    return _exact(total, -k)


# --- Addresses --------------------------------------------------------------------


def host_port(value, names=False):
    """(host, port) from "host:port" or "[IPv6]:port"; ValueError saying what is wrong.

    The host is an IP address (IPv4 dotted quad, IPv6 in brackets, as
    Python's ipaddress reads them), or with names also a DNS name of at most
    64 bytes (letters, digits, '_' and '-' in dot-separated labels; seeds are
    resolved later). The port is 1..65535.
    """
    raw = _utf8(value)
    if raw is None:
        raise ValueError(_HOST_PORT_RULE + " (a quoted string)")
    if raw.startswith(b"["):
        end = raw.find(b"]")
        host = raw[1:end]
        if end < 0 or raw[end + 1:end + 2] != b":":
            raise ValueError(_HOST_PORT_RULE)
        port = raw[end + 2:]
        if not _ipv6(host):
            raise ValueError(_HOST_PORT_RULE + " (brackets hold an IPv6 address)")
    else:
        cut = raw.rfind(b":")
        if cut < 0:
            raise ValueError(_HOST_PORT_RULE + " (the port is missing)")
        host = raw[:cut]
        port = raw[cut + 1:]
        if b":" in host:
            raise ValueError(_HOST_PORT_RULE + " (write an IPv6 address in brackets)")
        if not _hostname(host):
            raise ValueError(_HOST_PORT_RULE + " (the host must be an IP address or a DNS name of at most 64 bytes)")
    if not _digits(port, 5) or not 1 <= int(port) <= 65535:
        raise ValueError(_HOST_PORT_RULE + " (the port must be 1..65535)")
    if not names and b":" not in host and not _ipv4(host):
        raise ValueError("expected an IP address and port, e.g. 192.168.1.20:7946 or [fd00::1]:7946 "
                         "(names are allowed in cluster.seeds only)")
    return (host.decode(), int(port))


def _digits(raw, limit):
    """Whether raw is 1..limit ASCII digits, leading zeros aside."""
    if not raw:
        return False
    count = 0
    for b in raw:
        if not 48 <= b <= 57:
            return False
        if count or b != 48:
            count += 1
    return count <= limit


def _hostname(raw):
    """Whether raw is a DNS name: labels of letters, digits, '_' and '-' (not first or
    last), one dot between two and one after the last allowed; at most wire.MAX_HOST_BYTES."""
    if not raw or len(raw) > wire.MAX_HOST_BYTES:
        return False
    if raw.endswith(b"."):
        raw = raw[:-1]
    for label in raw.split(b"."):
        if not label or label[0] == 45 or label[-1] == 45:  # "-"
            return False
        for b in label:
            if not (97 <= b | 32 <= 122 or 48 <= b <= 57 or b == 95 or b == 45):  # letters, digits, "_", "-"
                return False
    return True


def _ipv4(raw):
    """Whether raw is a dotted quad as Python's ipaddress reads one (no leading zeros)."""
    parts = raw.split(b".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not _digits(part, 3) or (part[0] == 48 and len(part) > 1) or int(part) > 255:
            return False
    return True


def _ipv6(raw):
    """Whether raw is an IPv6 address as Python's ipaddress reads one ("%zone" allowed)."""
    if b"/" in raw:
        return False
    cut = raw.find(b"%")
    if cut >= 0:
        if cut == len(raw) - 1 or b"%" in raw[cut + 1:]:
            return False
        raw = raw[:cut]
    parts = raw.split(b":")
    if len(parts) < 3:
        return False
    if b"." in parts[-1]:  # an IPv4 address in the last 32 bits
        if not _ipv4(parts[-1]):
            return False
        parts[-1:] = [b"0", b"0"]
    if len(parts) > 9:
        return False
    skip = -1  # where "::" stands for one or more zero groups
    for i in range(1, len(parts) - 1):
        if not parts[i]:
            if skip >= 0:
                return False
            skip = i
    if skip < 0:
        if len(parts) != 8:
            return False
        groups = parts
    else:
        # The groups before and after "::"; a leading or trailing ":" only as part of it.
        high = skip if parts[0] else skip - 1
        low = len(parts) - skip - 1 if parts[-1] else len(parts) - skip - 2
        if (not parts[0] and high) or (not parts[-1] and low) or high + low > 7:
            return False
        groups = parts[:high] + parts[len(parts) - low:]
    for group in groups:
        if not 1 <= len(group) <= 4:
            return False
        for b in group:
            if not (48 <= b <= 57 or 97 <= b | 32 <= 102):  # hex digits
                return False
    return True


def loopback(host):
    """Whether host, an IP address as host_port() returns it, is a loopback address (127.0.0.0/8, ::1).

    Only these are out of other machines' reach; the wildcards are not, nor
    are IPv4-mapped forms (::ffff:127.0.0.1): the safe side.
    """
    raw = _utf8(host) or b""
    if _ipv4(raw):
        return raw[:4] == b"127."
    raw = raw.split(b"%")[0]
    if not _ipv6(raw) or b"." in raw:
        return False
    parts = raw.split(b":")
    last = parts.pop()
    for part in parts:
        if part and int(part.decode(), 16):
            return False
    return last != b"" and int(last.decode(), 16) == 1


def exposed(host, keyring, trust_list, insecure):
    """Whether a node bound to host may not start: it is reachable from other machines (any
    address but loopback, wildcards included) with neither a keyring nor a trust list (an
    empty one counts: nobody may lead), and the config does not say insecure: true. Each
    shell words the error (agent/config.py, micropython/leaderd_config.py)."""
    return not (insecure is True or keyring or trust_list or loopback(host))


# --- Tags --------------------------------------------------------------------------


def tag_problems(value):
    """What is wrong with value as node tags: [(tag, the bad item, what is allowed)], [] if nothing.

    tag is None for a problem of the whole map or of a tag's name, else the
    tag whose value is wrong. Tags are a map of at most wire.MAX_TAGS names
    of 1..32 UTF-8 bytes to texts of at most 32 (the wire's limits).
    """
    if not isinstance(value, dict):
        return [(None, value, "expected a mapping of string -> string, e.g. {rack: r1, role: db}")]
    if len(value) > wire.MAX_TAGS:
        return [(None, value, "expected at most %d tags (got %d)" % (wire.MAX_TAGS, len(value)))]
    limit = wire.MAX_TAG_TEXT_BYTES
    problems = []
    for key in value:
        if not 1 <= _text_bytes(key) <= limit:
            problems.append((None, key, "expected tag names of 1..%d UTF-8 bytes" % limit))
        elif not 0 <= _text_bytes(value[key]) <= limit:
            problems.append((key, value[key], "expected a string of at most %d UTF-8 bytes "
                             "(quote numbers and yes/no)" % limit))
    return problems


# --- Keys ------------------------------------------------------------------------


def base64_bytes(value):
    """The bytes that value (a str, white space around it ignored) is the strict base64 of, or None.

    Strict: only A-Z a-z 0-9 + /, then at most two '=', in a multiple of
    four characters (binascii's own decoder skips anything else, so a typo
    would make another key).
    """
    raw = _utf8(value)
    if raw is None:
        return None
    raw = _strip(raw)
    end = len(raw)
    if raw.endswith(b"=="):
        end -= 2
    elif raw.endswith(b"="):
        end -= 1
    if len(raw) % 4:
        return None
    for i in range(end):
        b = raw[i]
        if not (97 <= b | 32 <= 122 or 47 <= b <= 57 or b == 43):  # letters (| 32: lower case), '/', digits, '+'
            return None
    return binascii.a2b_base64(raw)


def key_lines(text):
    """[(line number, line)] of a key file's text: its lines stripped, without blank and '#' ones."""
    out = []
    number = 0
    for line in text.split("\n"):
        number += 1
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((number, line))
    return out


def cluster_key(value, keys):
    """The cluster key that value is the base64 of, checked against the keys before it; ValueError otherwise."""
    raw = base64_bytes(value)
    if raw is None:
        raise ValueError("not valid base64 (expected one line: the base64 of a cluster key)")
    if len(raw) < MIN_CLUSTER_KEY_BYTES:
        raise ValueError("key decodes to %d bytes, at least %d needed (make one with: "
                         "head -c 32 /dev/urandom | base64)" % (len(raw), MIN_CLUSTER_KEY_BYTES))
    if raw in keys:
        raise ValueError("the same key appears twice")
    return raw


def public_key(value, name):
    """The Ed25519 public key that value is the base64 of (node name's, in a trust list); ValueError otherwise."""
    raw = base64_bytes(value)
    if raw is None or len(raw) != KEY_BYTES:
        raise ValueError("expected the base64 of a 32-byte Ed25519 public key (the one line of %s.pub)" % name)
    problem = public_key_problem(raw)
    if problem is not None:
        raise ValueError("not a usable Ed25519 public key: " + problem)
    return raw


# The curve of Ed25519 (RFC 8032 section 5.1): -x**2 + y**2 = 1 + d x**2 y**2 mod p,
# and the y of its four points of order 8 (with -_Y8).
_P = 2 ** 255 - 19
_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
_Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022


def public_key_problem(raw):
    """Why the 32 bytes raw are not a public key to trust, as a phrase; None when they are.

    OpenSSL and ed25519.py take any 32 bytes as a public key. Refused here:
    encodings that are not canonical (y >= p; x = 0 with the sign bit set),
    bytes that decode to no point of the curve (no signature verifies), and
    the eight points of small order (order 1, 2, 4 or 8: the identity
    01 00..00, all zeros, ...). A small-order key is no one's key: [k]A takes
    at most eight values, so a signature made without any private key
    verifies for about one message in eight, and anyone could sign claims
    under that node's name. The small-order points are those whose y is 1,
    -1 (x = 0), 0 or +-_Y8.
    """
    p = _P
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= p:
        return "not canonical (its y coordinate is p or more)"
    # x**2 = (y**2 - 1) / (d y**2 + 1) (RFC 8032 section 5.1.3): a point when it has a root (Euler's criterion).
    x2 = (y * y - 1) * pow((_D * y * y + 1) % p, p - 2, p) % p
    if x2 and pow(x2, (p - 1) // 2, p) != 1:
        return "not a point of the Ed25519 curve"
    if not x2 and sign:
        return "not canonical (x is 0 and the sign bit is set)"
    if y < 2 or y == p - 1 or y == _Y8 or y == p - _Y8:
        return "a point of small order (order 1, 2, 4 or 8), under which signatures verify without any private key"
    return None
