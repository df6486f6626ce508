"""What a resource makes reachable from outside the VPS: the shared model of both port rules.

Two kinds of resource can open a port in this program:

* a ``docker:index/container:Container``: published ``ports`` (the ``ip`` defaults to 0.0.0.0
  and, without ``external``, Docker picks a random host port), ``publishAllPorts``, or the host
  network (``networkMode: host``: every listening port is the host's);
* a ``command:remote:Command``: the firewall contract ``... apply --ssh-port N --allow P/PROTO``
  in ``create``/``update``, or literal ``ufw allow``, ``iptables ... -j ACCEPT`` and
  ``docker run -p`` commands anywhere in ``create``, ``update`` or the script on ``stdin``.

Anything the analyzer cannot know at preview becomes an exposure of an unknown port, which
both rules report (fail closed).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Any

from ._props import UNKNOWN, as_int, is_unknown

CONTAINER = "docker:index/container:Container"
REMOTE_COMMAND = "command:remote:Command"
BOTH = ("tcp", "udp")


@dataclass(frozen=True)
class Published:
    """One ``ports`` entry that is not bound to loopback."""

    internal: Any  # int, UNKNOWN or None
    external: Any  # int, UNKNOWN or None (Docker picks a random host port)
    ip: Any        # str or UNKNOWN
    protocols: tuple[str, ...]

    def describe(self) -> str:
        internal = "an unknown port" if is_unknown(self.internal) else f"port {self.internal}"
        if self.external is None:
            host = "a random host port"
        elif is_unknown(self.external):
            host = "a host port unknown at preview"
        else:
            host = f"host port {self.external}"
        ip = "an address unknown at preview" if is_unknown(self.ip) else self.ip
        return f"publishes container {internal} as {host}/{'+'.join(self.protocols)} on {ip}"


@dataclass(frozen=True)
class Opening:
    """Ports a firewall rule opens: ``low..high`` (None when unknown) for the protocols."""

    low: int | None
    high: int | None
    protocols: tuple[str, ...]
    source: str  # the rule as written, quoted in messages

    def covers(self, port: int) -> bool:
        return self.low is None or self.low <= port <= (self.high or self.low)

    def ports(self) -> list[tuple[int, str]] | None:
        if self.low is None:
            return None
        return [(p, proto) for p in range(self.low, (self.high or self.low) + 1)
                for proto in self.protocols]


@dataclass
class Exposure:
    published: list[Published]
    openings: list[Opening]
    blanket: list[str]
    """Reasons every port (or an unknowable set) may be public; each is a clause for a message."""


def _protocols(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ("tcp",)
    if is_unknown(value) or not isinstance(value, str):
        return BOTH
    return (value.lower(),)


def _is_loopback(ip: Any) -> bool:
    if is_unknown(ip) or not isinstance(ip, str):
        return False
    text = ip.strip().strip("[]")
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def _port(value: Any) -> Any:
    """A port number; anything that is not one (unknown, malformed) counts as unknown."""
    port = as_int(value)
    return UNKNOWN if port is None else port


def container_exposure(props: dict[str, Any]) -> Exposure:
    blanket: list[str] = []
    published: list[Published] = []
    mode = props.get("networkMode")
    if is_unknown(mode):
        blanket.append("has a networkMode unknown at preview, so it may share the host network")
    elif isinstance(mode, str) and mode.lower() == "host":
        blanket.append('runs on the host network (networkMode "host"), so every port it '
                       "listens on is public")
    publish_all = props.get("publishAllPorts")
    if is_unknown(publish_all):
        blanket.append("has publishAllPorts unknown at preview")
    elif publish_all is True:
        blanket.append("publishes every exposed port on a random host port (publishAllPorts true)")
    ports = props.get("ports")
    if is_unknown(ports) or (ports is not None and not isinstance(ports, list)):
        blanket.append("has published ports unknown at preview")
        ports = []
    for entry in ports or []:
        if not isinstance(entry, dict):
            blanket.append("has a published port entry unknown at preview")
            continue
        ip = entry.get("ip")
        ip = "0.0.0.0" if ip in (None, "") else ip
        if _is_loopback(ip):
            continue
        published.append(Published(
            internal=_port(entry.get("internal")),
            external=None if entry.get("external") is None else _port(entry.get("external")),
            ip=ip,
            protocols=_protocols(entry.get("protocol")),
        ))
    return Exposure(published, [], blanket)


# --- remote commands ---------------------------------------------------------------------

_SPEC = re.compile(r"^(\d{1,5})(?:[:-](\d{1,5}))?(?:/(tcp|udp|any))?$", re.IGNORECASE)
_UFW_APPS = {"ssh": (22, "tcp"), "openssh": (22, "tcp"), "http": (80, "tcp"),
             "https": (443, "tcp"), "www": (80, "tcp")}
_UFW = re.compile(r"\bufw\s+(?:--force\s+)?(?:insert\s+\d+\s+|prepend\s+)?(?:allow|limit)\b"
                  r"([^;&|\n]*)")
_IPTABLES = re.compile(r"\bip6?tables(?:-legacy|-nft)?\b([^;&|\n]*)")
_DOCKER_RUN = re.compile(r"\bdocker\s+(?:container\s+)?(?:run|create)\b([^;&|\n]*)")
_SEPARATOR = re.compile(r"\\\n")


def _spec_openings(spec: str, default_protos: tuple[str, ...], source: str) -> list[Opening]:
    """``8080``, ``5000/udp``, ``6000:6010/tcp``, ``80,443/tcp`` as openings; [] if not literal."""
    spec = spec.strip().strip("'\"")
    proto_suffix = ""
    if "/" in spec:
        spec, proto_suffix = spec.rsplit("/", 1)
    result = []
    for part in spec.split(","):
        match = _SPEC.match(part + (f"/{proto_suffix}" if proto_suffix else ""))
        if not match:
            return []
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        proto = (match.group(3) or "").lower()
        protos = default_protos if proto in ("", "any") else (proto,)
        result.append(Opening(low, high, protos, source))
    return result


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=False)
    except ValueError:
        return text.split()


def _without_comments(script: str) -> str:
    lines = []
    for line in _SEPARATOR.sub(" ", script).splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#"):
            continue
        lines.append(re.sub(r"\s#.*$", "", line))
    return "\n".join(lines)


def _flag_values(tokens: list[str], flag: str) -> list[str]:
    values = []
    for index, token in enumerate(tokens):
        if token == flag and index + 1 < len(tokens):
            values.append(tokens[index + 1])
        elif token.startswith(flag + "="):
            values.append(token.split("=", 1)[1])
    return values


def _contract_openings(command: str) -> tuple[list[Opening], list[str]]:
    """The firewall script's flags: ``--ssh-port N`` (tcp) and each ``--allow P/PROTO``."""
    openings: list[Opening] = []
    unreadable: list[str] = []
    tokens = _tokens(command)
    for value in _flag_values(tokens, "--ssh-port"):
        found = _spec_openings(value, ("tcp",), f"--ssh-port {value}")
        found = [Opening(o.low, o.high, ("tcp",), o.source) for o in found]
        openings += found or []
        if not found:
            unreadable.append(f"--ssh-port {value}")
    for value in _flag_values(tokens, "--allow"):
        found = _spec_openings(value, BOTH, f"--allow {value}")
        openings += found
        if not found:
            unreadable.append(f"--allow {value}")
    return openings, unreadable


def _ufw_openings(script: str) -> list[Opening]:
    openings = []
    for match in _UFW.finditer(script):
        rule = match.group(0).strip()
        words = _tokens(match.group(1))
        if words and words[0] == "out":
            continue  # outgoing traffic opens nothing to the internet
        protos = BOTH
        if "proto" in words and words.index("proto") + 1 < len(words):
            protos = (words[words.index("proto") + 1].lower(),)
        if "port" in words and words.index("port") + 1 < len(words):
            openings += _spec_openings(words[words.index("port") + 1], protos, rule)
            continue
        words = [w for w in words if w not in ("in",)]
        if not words:
            continue
        app = _UFW_APPS.get(words[0].lower())
        if app:
            openings.append(Opening(app[0], app[0], (app[1],), rule))
        else:
            # Variables ("$port/tcp") are the script's parameters; the flags carry their values.
            openings += _spec_openings(words[0], protos, rule)
    return openings


def _iptables_openings(script: str) -> list[Opening]:
    openings = []
    for match in _IPTABLES.finditer(script):
        words = _tokens(match.group(1))
        if not any(w in ("-A", "-I", "--append", "--insert") for w in words):
            continue
        jump = _flag_values(words, "-j") + _flag_values(words, "--jump")
        if "ACCEPT" not in jump:
            continue
        protos = tuple(p.lower() for p in _flag_values(words, "-p") + _flag_values(words, "--protocol")) or BOTH
        rule = match.group(0).strip()
        for flag in ("--dport", "--dports", "--destination-port", "--destination-ports"):
            for value in _flag_values(words, flag):
                openings += _spec_openings(value, protos, rule)
    return openings


def _docker_run(script: str) -> tuple[list[Published], list[str]]:
    published: list[Published] = []
    blanket: list[str] = []
    for match in _DOCKER_RUN.finditer(script):
        words = _tokens(match.group(1))
        rule = match.group(0).strip()
        networks = _flag_values(words, "--network") + _flag_values(words, "--net")
        if "host" in networks:
            blanket.append(f"runs `{rule}` on the host network, so every port it listens on is public")
        if "-P" in words or "--publish-all" in words:
            blanket.append(f"runs `{rule}`, which publishes every exposed port")
        for spec in _flag_values(words, "-p") + _flag_values(words, "--publish"):
            body, _, proto = spec.partition("/")
            parts = body.rsplit(":", 2)
            ip, external, internal = "0.0.0.0", None, parts[-1]
            if len(parts) == 2:
                external = parts[0]
            elif len(parts) == 3:
                ip, external = parts[0] or "0.0.0.0", parts[1]
            if _is_loopback(ip):
                continue
            published.append(Published(internal=_port(internal),
                                       external=_port(external) if external else None,
                                       ip=ip, protocols=_protocols(proto or None)))
    return published, blanket


def command_exposure(props: dict[str, Any]) -> Exposure:
    published: list[Published] = []
    openings: list[Opening] = []
    blanket: list[str] = []
    for field in ("create", "update", "stdin"):
        value = props.get(field)
        if value is None:
            continue
        if is_unknown(value) or not isinstance(value, str):
            blanket.append(f"has a {field} command unknown at preview, so what it opens can't be checked")
            continue
        script = _without_comments(value)
        if field != "stdin":
            found, unreadable = _contract_openings(script)
            openings += found
            blanket += [f"opens {flag!r} in its {field} command, which is not a literal PORT/PROTO"
                        for flag in unreadable]
        openings += _ufw_openings(script) + _iptables_openings(script)
        docker_published, docker_blanket = _docker_run(script)
        published += docker_published
        blanket += docker_blanket
    return Exposure(list(dict.fromkeys(published)), list(dict.fromkeys(openings)),
                    list(dict.fromkeys(blanket)))


def exposure(resource_type: str, props: dict[str, Any]) -> Exposure | None:
    if resource_type == CONTAINER:
        return container_exposure(props)
    if resource_type == REMOTE_COMMAND:
        return command_exposure(props)
    return None
