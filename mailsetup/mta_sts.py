"""The MTA-STS policy file (RFC 8461): `mailsetup dns --mta-sts` prints it and
mailsetup-webmail serves it at mta_sts_url(domain), so both come from here
(the core ships this module; the webmail package may import it, not the
other way round)."""

MODES = ("enforce", "testing", "none")
DEFAULT_MODE = "testing"
DEFAULT_MAX_AGE = 86400
MAX_AGE_LIMIT = 31557600  # RFC 8461 3.2: at most a year


def mta_sts_url(domain):
    """Where senders fetch the policy of domain."""
    return f"https://mta-sts.{domain}/.well-known/mta-sts.txt"


def mta_sts_policy(mx_hosts, mode=DEFAULT_MODE, max_age=DEFAULT_MAX_AGE):
    """The text of the policy file: one `mx:` line for each MX host (a single host
    name may be given as a string). ValueError for a mode or max_age RFC 8461 refuses."""
    if isinstance(mx_hosts, str):
        mx_hosts = [mx_hosts]
    hosts = [h.rstrip(".").lower() for h in mx_hosts if h and h.strip(".")]
    if mode not in MODES:
        raise ValueError(f"MTA-STS mode {mode!r} is not one of {', '.join(MODES)}")
    if isinstance(max_age, bool) or not isinstance(max_age, int) or not 0 <= max_age <= MAX_AGE_LIMIT:
        raise ValueError(f"MTA-STS max_age {max_age!r} is not a number of seconds from 0 to {MAX_AGE_LIMIT}")
    if not hosts and mode != "none":
        raise ValueError("an MTA-STS policy in mode enforce or testing names at least one MX host")
    lines = ["version: STSv1", f"mode: {mode}"] + [f"mx: {h}" for h in dict.fromkeys(hosts)]
    return "\n".join(lines + [f"max_age: {max_age}"]) + "\n"


def parse_policy(text):
    """The policy's meaning (RFC 8461 3.2): {"version", "mode", "mx": sorted hosts};
    max_age is left out, it is the administrator's."""
    found = {"version": None, "mode": None, "mx": []}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "mx":
            found["mx"].append(value.rstrip(".").lower())
        elif key in ("version", "mode"):
            found[key] = value
    found["mx"] = sorted(set(found["mx"]))
    return found
