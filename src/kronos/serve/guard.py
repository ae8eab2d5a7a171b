"""Who the service answers: the Host allowlist and the refusal of cross-site writes; and how
long a request's body may take. Standard library only: `kronos serve --help` reads it.

A server on loopback without a key is reachable from any web page the machine's browser opens:
by DNS rebinding (a name the page controls resolves to 127.0.0.1, so the browser sends it the
page's requests with that name as Host) and by cross-site POSTs (a form or a `text/plain` fetch
needs no preflight). So every request must name this server in its Host header (a loopback name
with the port it listens on, or a name the operator allowed), and a request that changes
anything (any method but GET, HEAD and OPTIONS) must not come from another origin (its Origin
header, else its Sec-Fetch-Site header). Clients that are not browsers (curl, httpx) send
neither header, and are unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

READ_TIMEOUT_S = 30.0  # seconds a request's body may take to arrive, in all (kronos serve --read-timeout)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_HOST = "*"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_ORIGIN_FETCHES = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values from this origin or a person


def split_authority(authority: str) -> tuple[str, int | None] | None:
    """'Example.com:8000' -> ('example.com', 8000), '[::1]' -> ('::1', None); None when malformed."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        name, bracket, rest = authority[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if colon else None
    if not name or (port_text is not None and not (port_text.isdigit() and 0 < int(port_text) < 65536)):
        return None
    return name.rstrip("."), None if port_text is None else int(port_text)


@dataclass(frozen=True)
class HostRules:
    """The names this server answers to: the loopback names with its own port (or none, as for
    port 80), and `allowed` names with any port (a proxy in front chooses it); '*' allows any."""

    allowed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = tuple(name.strip().lower().rstrip(".").strip("[]") for name in self.allowed)
        if not all(names):
            raise ValueError(f"allowed host names must not be empty, got {self.allowed!r}")
        object.__setattr__(self, "allowed", names)

    def allows(self, authority: str, port: int | None) -> bool:
        """Whether a Host header (or an Origin's host[:port]) names this server, listening on `port`."""
        if ANY_HOST in self.allowed:
            return True
        parts = split_authority(authority)
        if parts is None:
            return False
        name, given_port = parts
        if name in self.allowed:
            return True
        return name in LOOPBACK_NAMES and given_port in (None, port)

    def refusal(self, method: str, headers: dict[str, str], port: int | None) -> tuple[int, str] | None:
        """(status, message) for a request this server must not answer; None for one it may."""
        host = headers.get("host")
        if host is None or not self.allows(host, port):
            return 400, (
                f"this server does not answer to the Host {host!r}: it answers to "
                f"{self.describe(port)} (kronos serve --allowed-host NAME adds a name)"
            )
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None:
            authority = urlsplit(origin).netloc if origin != "null" else ""
            if not authority or not self.allows(authority, port):
                return (
                    403,
                    f"cross-site request refused: a page from {origin!r} may not send {method} requests here",
                )
        elif headers.get("sec-fetch-site", "none") not in SAME_ORIGIN_FETCHES:
            return (
                403,
                f"cross-site request refused: the browser says it came from a {headers['sec-fetch-site']} page",
            )
        return None

    def describe(self, port: int | None) -> str:
        if ANY_HOST in self.allowed:
            return "any name"
        loopback = ", ".join(
            f"{name}:{port}" if ":" not in name else f"[{name}]:{port}" for name in LOOPBACK_NAMES
        )
        return loopback + "".join(f", {name}" for name in self.allowed)
