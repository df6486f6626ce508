"""What a resource makes reachable from outside the VPS: the shared model of both port rules.

Two kinds of resource can open a port in this program:

* a ``docker:index/container:Container``: published ``ports`` (the ``ip`` defaults to 0.0.0.0
  and, without ``external``, Docker picks a random host port), ``publishAllPorts``, or the host
  network (``networkMode: host``: every listening port is the host's);
* a ``command:remote:Command``: the firewall contract ``... apply --ssh-port N --allow P/PROTO``
  in ``create``/``update``, or literal ``ufw allow``, ``iptables ... -j ACCEPT`` and
  ``docker run -p`` commands anywhere in ``create``, ``update`` or the script on ``stdin``.

Anything the analyzer cannot know at preview becomes an exposure of an unknown port, which
both rules report (fail closed): an unknown ``ports`` entry, ``networkMode``, ``create`` or
``update``.

One unknown is read more closely: ``stdin``. A real first preview has it unknown for every file
written from a value that does not exist yet (the rclone config derived from an API token, a
webhook URL, a generated password), and failing those would fail every preview. Stdin is code
only when the command can run it, so an unknown stdin counts as exposure only when a *known*
``create``, ``update`` or ``delete`` (read as a shell reads it, into ``bash -c`` scripts and
``$(...)``) does one of these with it:

* feeds it to a shell or interpreter (``bash -s``, ``| sh``, ``python3``, ``eval "$(cat)"``),
  or to anything not known to only store or ignore it (a container with ``-i``, ``crontab``,
  ``iptables-restore``, ``docker load``...);
* writes it with an execute bit (``install`` without ``-m``, whose default is 0755, or with an
  executable mode), or makes the written file executable, or runs it, or copies it elsewhere
  as below;
* writes it under a path that something runs or reads as configuration that can open a port
  (:func:`executed_place`: ``/etc/cron*``, systemd and init, ufw/iptables/nftables, network
  hooks, ``/etc/docker``, ssh, sudoers, profile and home directories, apt and logrotate hooks,
  library dirs, any ``bin``/``sbin`` directory, ``/opt/jamjam/scripts``...), or under a path the
  reader can't resolve (a relative path, an unknown variable);
* uses a shell construct the reader does not follow (backquotes, here-documents, process
  substitution, an unknown ``sudo`` flag).

Otherwise (``install -m 0600 /dev/stdin /etc/jamjam/rclone.conf.pulumi-new && mv ...``,
``tee "$(mktemp)"`` then ``docker run --env-file``) stdin is data and opens nothing. A known
stdin is still scanned for ``ufw``/``iptables``/``docker run`` as before.
"""

from __future__ import annotations

import ipaddress
import posixpath
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


# --- an unknown stdin: script or data? ---------------------------------------------------
#
# The analysis below reads the known create/update/delete as a shell would, to the depth needed
# to tell "writes stdin to a data file" from everything else. It is written here rather than
# taken from a shell parser: bashlex, the one maintained Python parser of bash, is GPL-3.0 and
# would have to ship inside the policy pack; and the question is narrow (where does stdin go),
# so a small reader that gives up, failing closed, on anything it does not follow is enough.

_PUNCT = ";&|()<>\n"
_OPERATORS = sorted(["&&", "||", "|&", ";;", ">>", "<<<", "<<", ">&", "<&", "&>>", "&>", ">|",
                     "<>", "|", "&", ";", "(", ")", "<", ">", "\n"], key=len, reverse=True)
_SEQUENCE = {"&&", "||", ";", ";;", "&", "\n", "(", ")"}
_REDIRECTS = {">", ">>", ">|", "&>", "&>>", "<", "<>", ">&", "<&"}
_SUB = "__jamjam_sub_{}__"
_SUB_WORD = re.compile(r"__jamjam_sub_(\d+)__")
_VAR_WORD = re.compile(r"^\$(?:\{(\w+)\}|(\w+))$")
_ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)=(.*)$", re.S)
_KEYWORDS = {"{", "}", "!", "if", "then", "else", "elif", "fi", "do", "done", "while", "until",
             "time"}
_STDIN_PATHS = {"/dev/stdin", "/dev/fd/0", "/proc/self/fd/0", "-"}

SHELLS = {"bash", "sh", "dash", "zsh", "ksh", "ash", "mksh", "yash"}
# Commands that neither run what they read nor write it anywhere; anything not named here (or
# handled below) that can see stdin counts as a script runner.
_HARMLESS = {"true", "false", ":", "set", "exit", "return", "export", "unset", "cd", "umask",
             "sleep", "sync", "echo", "printf", "test", "[", "rm", "rmdir", "mkdir", "chown",
             "chgrp", "touch", "mktemp", "stat", "ls", "id", "whoami", "date", "logger",
             "systemctl", "wc", "sha256sum", "sha1sum", "md5sum", "wait", "shift", "local",
             "readonly", "cmp"}
_DOCKER_HARMLESS = {"update", "pull", "rm", "rmi", "stop", "start", "restart", "kill", "ps",
                    "inspect", "logs", "network", "volume", "tag", "wait", "info", "version"}
_DOCKER_GLOBAL_ARGS = {"-H", "--host", "-c", "--context", "-l", "--log-level", "--config"}

# Where a written file is run, or read by something that runs commands or opens ports. Writing
# stdin there makes it code whatever its mode.
_EXECUTED_DIRS: tuple[tuple[str, str], ...] = (
    ("/var/spool/cron", "cron runs what is there"),
    ("/etc/anacrontab", "cron runs what is there"),
    ("/etc/systemd", "systemd runs the units there"),
    ("/lib/systemd", "systemd runs the units there"),
    ("/usr/lib/systemd", "systemd runs the units there"),
    ("/usr/local/lib/systemd", "systemd runs the units there"),
    ("/run/systemd", "systemd runs the units there"),
    ("/etc/ufw", "it is the firewall's configuration"),
    ("/etc/iptables", "it is the firewall's configuration"),
    ("/etc/nftables.conf", "it is the firewall's configuration"),
    ("/etc/nftables.d", "it is the firewall's configuration"),
    ("/etc/firewalld", "it is the firewall's configuration"),
    ("/etc/default", "service start-up scripts read it (the firewall's among them)"),
    ("/etc/network", "it is network configuration, whose hooks run scripts"),
    ("/etc/netplan", "it is network configuration"),
    ("/etc/NetworkManager", "it is network configuration, whose hooks run scripts"),
    ("/etc/networkd-dispatcher", "it is network configuration, whose hooks run scripts"),
    ("/etc/dhcp", "it is network configuration, whose hooks run scripts"),
    ("/etc/docker", "the Docker daemon reads it (it can open its API or change publishing)"),
    ("/var/lib/docker", "it is the Docker daemon's state, port bindings included"),
    ("/etc/ssh", "sshd reads it"),
    ("/etc/sudoers", "it grants root"),
    ("/etc/sudoers.d", "it grants root"),
    ("/etc/pam.d", "it decides logins"),
    ("/etc/security", "it decides logins"),
    ("/etc/profile", "login shells run it"),
    ("/etc/profile.d", "login shells run it"),
    ("/etc/bash.bashrc", "shells run it"),
    ("/etc/environment", "every login reads it"),
    ("/etc/skel", "it becomes new users' shell start-up files"),
    ("/root", "it is a home directory, whose start-up files and keys shells and sshd use"),
    ("/home", "it is a home directory, whose start-up files and keys shells and sshd use"),
    ("/etc/apt", "apt runs the hooks its configuration names"),
    ("/etc/logrotate.d", "logrotate runs the scripts its configuration holds"),
    ("/etc/logrotate.conf", "logrotate runs the scripts its configuration holds"),
    ("/etc/update-motd.d", "logins run what is there"),
    ("/etc/ld.so.preload", "every program loads what it names"),
    ("/etc/ld.so.conf", "every program loads libraries from what it names"),
    ("/etc/ld.so.conf.d", "every program loads libraries from what it names"),
    ("/etc/modprobe.d", "the kernel's module loader runs commands it names"),
    ("/etc/udev", "udev runs commands its rules name"),
    ("/etc/sysctl.conf", "it sets the kernel's network settings"),
    ("/etc/sysctl.d", "it sets the kernel's network settings"),
    ("/etc/xinetd.d", "it starts listening services"),
    ("/etc/inetd.conf", "it starts listening services"),
    ("/etc/nginx", "a web server reads it"),
    ("/etc/apache2", "a web server reads it"),
    ("/etc/caddy", "a web server reads it"),
    ("/etc/haproxy", "a proxy reads it"),
    ("/etc/cloud", "cloud-init runs what it names"),
    ("/var/lib/cloud", "cloud-init runs what is there"),
    ("/opt/jamjam/scripts", "the host's scheduled jobs run the scripts there"),
    ("/lib", "programs load code from there"),
    ("/lib64", "programs load code from there"),
    ("/usr/lib", "programs load code from there"),
    ("/usr/lib64", "programs load code from there"),
    ("/usr/local/lib", "programs load code from there"),
    ("/usr/libexec", "programs run what is there"),
    ("/boot", "the machine boots from it"),
)
_EXECUTED_NAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^/etc/cron[^/]*(/|$)"), "cron runs what is there"),
    (re.compile(r"^/etc/(rc[^/]*|init\.d|init)(/|$)"), "the init system runs it at boot"),
)
_EXECUTABLE_DIRS = {"bin", "sbin", "libexec"}


class _Unreadable(Exception):
    """A construct the reader does not follow: the command counts as running stdin."""


def executed_place(path: str) -> str | None:
    """Why a file at ``path`` (absolute, normalised) is run or read as configuration that can
    open ports, or None for a place that only holds data."""
    for prefix, reason in _EXECUTED_DIRS:
        if path == prefix or path.startswith(prefix + "/"):
            return reason
    for pattern, reason in _EXECUTED_NAMES:
        if pattern.match(path):
            return reason
    # Every component, the last too: a copy into a directory lands inside it.
    if _EXECUTABLE_DIRS & set(path.split("/")):
        return "it is in a directory of executables"
    return None


def _mode_executable(mode: str) -> bool:
    """Whether a chmod/install mode gives any execute bit; a mode not understood counts as one."""
    if re.fullmatch(r"[0-7]{1,4}", mode):
        return bool(int(mode, 8) & 0o111)
    if re.fullmatch(r"[ugoa]*[-+=][rwxXst]*(,[ugoa]*[-+=][rwxXst]*)*", mode):
        return any("x" in part.lower() for part in mode.split(",") if "-" not in part)
    return True


def _extract_substitutions(text: str) -> tuple[str, list[str]]:
    """``text`` with each ``$(...)`` replaced by a placeholder word, and the inner scripts;
    comments and line continuations removed as the shell removes them.

    Single quotes keep ``$(`` literal, as in the shell; backquotes, ``$((``, process
    substitution and here-documents are not followed. Comments are cut here, not by shlex:
    shlex would also cut at a ``#`` inside a word (``x#; bash -s``), where the shell does not."""
    out: list[str] = []
    subs: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            quote = None if c == "'" else quote
            out.append(c)
            i += 1
            continue
        if c == "\\":
            if text.startswith("\n", i + 1):
                i += 2  # a line continuation joins the lines
                continue
            out.append(text[i:i + 2])
            i += 2
            continue
        if quote is None and c == "#" and (not out or out[-1] in " \t\n;&|()<>"):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if c == "`":
            raise _Unreadable("a backquoted command substitution")
        if quote is None and c in "<>" and text.startswith("(", i + 1):
            raise _Unreadable("a process substitution")
        if quote is None and text.startswith("<<", i):
            raise _Unreadable("a here-document")
        if text.startswith("$((", i):
            raise _Unreadable("an arithmetic expansion")
        if text.startswith("$(", i):
            depth, j, inner = 1, i + 2, None
            while j < len(text):
                ch = text[j]
                if inner == "'" or inner == '"':
                    if ch == inner:
                        inner = None
                    elif ch == "\\" and inner == '"':
                        j += 1
                elif ch in "'\"":
                    inner = ch
                elif ch == "\\":
                    j += 1
                elif ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if depth:
                raise _Unreadable("an unbalanced command substitution")
            subs.append(text[i + 2:j])
            out.append(_SUB.format(len(subs) - 1))
            i = j + 1
            continue
        if c in "'\"":
            quote = c if quote is None else (None if quote == c else quote)
        out.append(c)
        i += 1
    return "".join(out), subs


@dataclass
class _Simple:
    words: list[str]
    redirects: list[tuple[str, str]]
    piped: bool
    """Reads the previous pipeline element's output instead of the command's stdin."""


def _simple_commands(text: str) -> tuple[list[list[_Simple]], list[str]]:
    """The pipelines of ``text`` (each a list of simple commands) and its substitutions."""
    text, subs = _extract_substitutions(text)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=_PUNCT)
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        raw = list(lexer)
    except ValueError as err:
        raise _Unreadable(f"unbalanced quoting ({err})") from None
    tokens: list[str] = []
    for token in raw:
        if token and all(c in _PUNCT for c in token):
            i = 0
            while i < len(token):
                op = next(o for o in _OPERATORS if token.startswith(o, i))
                tokens.append(op)
                i += len(op)
        else:
            tokens.append(token)
    pipelines: list[list[_Simple]] = [[]]
    current = _Simple([], [], False)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _SEQUENCE or token in ("|", "|&"):
            if current.words or current.redirects:
                pipelines[-1].append(current)
            if token in ("|", "|&"):
                current = _Simple([], [], True)
            else:
                if pipelines[-1]:
                    pipelines.append([])
                current = _Simple([], [], False)
        elif token in _REDIRECTS:
            if current.words and current.words[-1].isdigit():
                current.words.pop()  # the fd number of `2>/dev/null`
            if i + 1 >= len(tokens):
                raise _Unreadable(f"a redirection `{token}` without a target")
            current.redirects.append((token, tokens[i + 1]))
            i += 1
        else:
            current.words.append(token)
        i += 1
    if current.words or current.redirects:
        pipelines[-1].append(current)
    return [p for p in pipelines if p], subs


class _StdinReader:
    """Follows where a command's stdin goes; :meth:`run` returns why it may be run, or None."""

    def __init__(self) -> None:
        self.vars: dict[str, str] = {}
        """Shell variables holding a fresh ``mktemp`` file: name -> its template path."""
        self.written: set[str] = set()
        """Data files that hold stdin (or a copy of it)."""

    def run(self, script: str, gets_stdin: bool = True, depth: int = 0) -> str | None:
        if depth > 8:
            return "it nests shells deeper than the pack reads"
        try:
            pipelines, subs = _simple_commands(script)
        except _Unreadable as err:
            return f"it holds {err}, which the pack does not follow"
        for index, inner in enumerate(subs):
            # A substitution's commands share the script's stdin; one that passes stdin out
            # turns it into words the script may run.
            why = self.run(inner, gets_stdin, depth + 1)
            if why:
                return why
            if gets_stdin and self._forwards_stdin(inner):
                return f"it captures stdin with `$({inner.strip()})`"
        for pipeline in pipelines:
            taint = False
            for position, command in enumerate(pipeline):
                sees = gets_stdin if position == 0 else taint
                sources = [target for op, target in command.redirects if op in ("<", "<>")]
                if sources and not any(op == "<&" for op, _ in command.redirects):
                    # From a file instead: stdin still, if that file is stdin or holds it.
                    sees = any(t in _STDIN_PATHS or self._path(t) in self.written
                               or self._path(t) is None for t in sources)
                why, taint = self._command(command, sees, subs, depth)
                if why:
                    return why
        return None

    def _forwards_stdin(self, inner: str) -> bool:
        try:
            pipelines, _ = _simple_commands(inner)
            firsts = [(_unwrapped(p[0].words), p[0]) for p in pipelines]
        except _Unreadable:
            return True
        for words, first in firsts:
            if words and _name(words[0]) in ("cat", "tee", "head", "tail", "read") \
                    and not any(op in ("<", "<>") for op, _ in first.redirects):
                return True
        return False

    def _path(self, word: str) -> str | None:
        match = _VAR_WORD.match(word)
        if match:
            word = self.vars.get(match.group(1) or match.group(2), "")
        if not word.startswith("/") or "$" in word or _SUB_WORD.search(word):
            return None
        return posixpath.normpath(word)

    def _destination(self, word: str, executable: bool, how: str) -> str | None:
        """Record a file written with stdin data; why it makes stdin code, or None."""
        path = self._path(word)
        if path is None:
            return f"{how} writes it to {word!r}, a path the pack can't resolve"
        if executable:
            return f"{how} writes it as an executable file, {path}"
        place = executed_place(path)
        if place:
            return f"{how} writes it to {path}, and {place}"
        self.written.add(path)
        return None

    def _command(self, command: _Simple, sees: bool, subs: list[str],
                 depth: int) -> tuple[str | None, bool]:
        """(why stdin may be run, whether the command's output carries stdin)."""
        words = list(command.words)
        while words and _ASSIGNMENT.match(words[0]):
            name, value = _ASSIGNMENT.match(words.pop(0)).groups()  # type: ignore[union-attr]
            self._assign(name, value, subs)
        shown = " ".join([shlex.join(command.words),
                          *(f"{op} {shlex.quote(target)}" for op, target in command.redirects)])
        shown = shown if len(shown) <= 100 else shown[:97] + "..."
        while words and words[0] in _KEYWORDS:
            words.pop(0)
        if words[:1] == ["for"]:
            return None, False  # `for NAME in WORDS`: its body comes after `do`
        try:
            words = _unwrapped(words)
        except _Unreadable as err:
            return (f"`{shown}` {err}" if sees else None), False
        outputs = [t for op, t in command.redirects if op in (">", ">>", ">|", "&>", "&>>")]
        if not words:
            return None, False
        name = _name(words[0])
        args = words[1:]
        touched = [w for w in words if self._path(w) in self.written]
        if self._path(words[0]) in self.written:
            return f"`{shown}` runs the file it wrote", False
        if name in SHELLS:
            return self._shell(args, sees, shown, depth), False
        if name == "trap":
            return (self.run(args[0], sees, depth + 1) if args else None), False
        if name == "install":
            return self._install(args, sees, shown), False
        if name == "tee" or (name == "cat" and all(a in _STDIN_PATHS for a in args if
                                                     not a.startswith("-") or a == "-")):
            carries = sees or bool(touched)
            if not carries:
                return None, False
            targets = [a for a in args if not a.startswith("-")] if name == "tee" else []
            for target in [*targets, *outputs]:
                if target in ("/dev/null", "/dev/stdout", "/dev/stderr"):
                    continue
                why = self._destination(target, False, f"`{shown}`")
                if why:
                    return why, False
            return None, not outputs
        if name in ("mv", "cp", "ln"):
            return self._copy(args, shown), False
        if name == "chmod":
            modes = [a for a in args if not a.startswith("-") or re.fullmatch(r"-[rwxXst]+", a)]
            if touched and (not modes or (not modes[0].startswith("-")
                                          and _mode_executable(modes[0])) or
                            any(a.startswith("--reference") for a in args)):
                return f"`{shown}` makes the file it wrote executable", False
            return None, False
        if name == "docker":
            return self._docker(args, sees, touched, shown), False
        if name in _HARMLESS:
            if outputs and touched:
                return f"`{shown}` copies the file it wrote where the pack can't follow", False
            return None, False
        if sees or touched:
            return (f"`{shown}` reads {'the file it wrote' if touched and not sees else 'stdin'}"
                    ", and the pack can't tell it from a script runner"), False
        return None, False

    def _assign(self, name: str, value: str, subs: list[str]) -> None:
        self.vars.pop(name, None)
        match = _SUB_WORD.fullmatch(value)
        if not match:
            return
        try:
            pipelines, _ = _simple_commands(subs[int(match.group(1))])
            [[command]] = pipelines
            words = _unwrapped(command.words)
        except (_Unreadable, ValueError):
            return
        # Only the plain form: -d makes a directory, -p/--tmpdir/-t move the file elsewhere;
        # a variable left unresolved makes any write through it fail closed.
        if words and _name(words[0]) == "mktemp" and all(
                w in ("-q", "--quiet") for w in words[1:] if w.startswith("-")):
            operands = [w for w in words[1:] if not w.startswith("-")]
            template = operands[-1] if operands else "/tmp/tmp.XXXXXXXXXX"
            if template.startswith("/"):
                self.vars[name] = template

    def _shell(self, args: list[str], sees: bool, shown: str, depth: int) -> str | None:
        script_mode = stdin_mode = False
        operands: list[str] = []
        index = 0
        while index < len(args):
            word = args[index]
            if operands:
                operands.append(word)
            elif word == "--":
                operands = args[index + 1:]
                break
            elif word in ("--rcfile", "--init-file"):
                index += 1
            elif re.fullmatch(r"[-+][a-zA-Z]+", word):
                script_mode |= "c" in word
                stdin_mode |= "s" in word and word.startswith("-")
                if word[-1] in "oO":
                    index += 1  # `-euo pipefail`: the option's name follows
            elif word.startswith("--"):
                pass
            else:
                operands.append(word)
            index += 1
        if script_mode:
            if not operands:
                return f"`{shown}` has -c without a script"
            return self.run(operands[0], sees, depth + 1)
        if stdin_mode or not operands or operands[0] in _STDIN_PATHS:
            return f"`{shown}` runs stdin as a shell script" if sees else None
        if self._path(operands[0]) in self.written:
            return f"`{shown}` runs the file it wrote as a shell script"
        return (f"`{shown}` runs a script the pack can't read with stdin attached"
                if sees else None)

    def _install(self, args: list[str], sees: bool, shown: str) -> str | None:
        mode, target_dir, operands = "0755", None, []
        index = 0
        while index < len(args):
            word = args[index]
            if word in ("-m", "--mode", "-o", "--owner", "-g", "--group", "-t",
                        "--target-directory", "-S", "--suffix"):
                value = args[index + 1] if index + 1 < len(args) else ""
                if word in ("-m", "--mode"):
                    mode = value
                elif word in ("-t", "--target-directory"):
                    target_dir = value
                index += 2
                continue
            if word.startswith("--mode="):
                mode = word.split("=", 1)[1]
            elif word.startswith("--target-directory="):
                target_dir = word.split("=", 1)[1]
            elif word.startswith("-") and word != "-":
                if word in ("-d", "--directory"):
                    return None
            else:
                operands.append(word)
            index += 1
        sources = operands if target_dir else operands[:-1]
        targets = ([f"{target_dir}/{posixpath.basename(s)}" for s in sources] if target_dir
                   else operands[-1:])
        from_stdin = sees and any(s in _STDIN_PATHS for s in sources)
        from_written = any(self._path(s) in self.written for s in sources)
        if not (from_stdin or from_written):
            return None
        executable = _mode_executable(mode)
        for target in targets:
            why = self._destination(target, executable, f"`{shown}`")
            if why:
                return why
        return None

    def _copy(self, args: list[str], shown: str) -> str | None:
        operands = [a for a in args if not a.startswith("-")]
        target_dir = next((a.split("=", 1)[1] for a in args
                           if a.startswith("--target-directory=")), None)
        if "-t" in args:
            target_dir = args[args.index("-t") + 1] if args.index("-t") + 1 < len(args) else ""
            operands = [a for a in operands if a != target_dir]
        sources = operands if target_dir else operands[:-1]
        if not any(self._path(s) in self.written for s in sources):
            return None
        targets = ([f"{target_dir}/{posixpath.basename(s)}" for s in sources] if target_dir
                   else operands[-1:])
        for target in targets:
            why = self._destination(target, False, f"`{shown}`")
            if why:
                return why
        return None

    def _docker(self, args: list[str], sees: bool, touched: list[str], shown: str) -> str | None:
        index = 0
        while index < len(args) and args[index].startswith("-"):
            index += 2 if args[index] in _DOCKER_GLOBAL_ARGS else 1
        rest = args[index:]
        sub = rest[0] if rest else ""
        if sub == "container" and len(rest) > 1:
            rest = rest[1:]
            sub = rest[0]
        if sub in ("run", "create"):
            options = []
            for word in rest[1:]:
                if not word.startswith("-") and (not options or options[-1] not in
                                                 _DOCKER_RUN_ARGS):
                    break
                options.append(word)
            interactive = any(o in ("-i", "--interactive") or re.fullmatch(r"-[a-zA-Z]*i[a-zA-Z]*", o)
                              or o.startswith("--interactive=") for o in options)
            attach = [options[n + 1] for n, o in enumerate(options[:-1])
                      if o in ("-a", "--attach")]
            if sees and (interactive or "stdin" in attach):
                return f"`{shown}` passes stdin into a container"
            env_files = set(_flag_values(options, "--env-file"))
            if any(w not in env_files for w in touched):
                return f"`{shown}` hands the file it wrote to a container other than as env"
            return None
        if sub in _DOCKER_HARMLESS and not touched:
            return None
        if sees or touched:
            return f"`{shown}` may read stdin as an image, archive or build"
        return None


# `docker run` options that take a value (so the value is not mistaken for the image).
_DOCKER_RUN_ARGS = {
    "-a", "--attach", "-e", "--env", "--env-file", "-v", "--volume", "-p", "--publish",
    "--network", "--net", "--network-alias", "--name", "-u", "--user", "-w", "--workdir",
    "--entrypoint", "--cap-add", "--cap-drop", "--security-opt", "-m", "--memory",
    "--memory-swap", "--pids-limit", "--tmpfs", "--mount", "-l", "--label", "--label-file",
    "--log-driver", "--log-opt", "--restart", "--cpus", "--hostname", "-h", "--add-host",
    "--dns", "--device", "--ulimit", "--pull", "--platform", "--health-cmd", "--stop-signal",
    "--stop-timeout", "--cidfile", "--ip", "--ip6", "--link", "--expose", "--group-add",
    "--volumes-from", "--cgroupns", "--ipc", "--pid", "--userns", "--uts", "--runtime",
    "--shm-size", "--storage-opt", "--sysctl", "--gpus", "--isolation",
}


def _name(word: str) -> str:
    return posixpath.basename(word) if word.startswith("/") else word


def _unwrapped(words: list[str]) -> list[str]:
    """``words`` without the wrappers that run the rest as a command (sudo, env, nice...)."""
    words = list(words)
    while words:
        name = _name(words[0])
        if name == "sudo":
            rest = words[1:]
            while rest and rest[0].startswith("-"):
                flag = rest.pop(0)
                if flag == "--":
                    break
                if flag in ("-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T",
                            "--user", "--group", "--chdir", "--host", "--prompt",
                            "--role", "--type", "--other-user", "--close-from"):
                    rest = rest[1:]
                elif flag in ("-s", "--shell", "-i", "--login"):
                    if not rest:
                        return ["bash"]  # a root shell that reads its commands from stdin
                elif flag in ("-e", "--edit", "-l", "--list", "-v", "--validate"):
                    raise _Unreadable(f"runs sudo {flag}, which the pack does not follow")
                elif not re.fullmatch(r"-[nEHPSbkKAB]+|--(non-interactive|preserve-env(=.*)?|"
                                      r"set-home|stdin|background|reset-timestamp|askpass|"
                                      r"bell)", flag):
                    raise _Unreadable(f"runs sudo {flag}, which the pack does not know")
            words = rest
        elif name == "env":
            rest = words[1:]
            while rest and (rest[0].startswith("-") or _ASSIGNMENT.match(rest[0])):
                flag = rest.pop(0)
                if flag in ("-u", "--unset", "-C", "--chdir"):
                    rest = rest[1:]
                elif flag.startswith("-S") or flag.startswith("--split-string"):
                    raise _Unreadable("runs env -S, which the pack does not follow")
                elif flag == "--":
                    break
            words = rest
        elif name in ("exec", "command", "nohup", "setsid") and len(words) > 1 \
                and not words[1].startswith("-"):
            words = words[1:]
        elif name == "nice":
            rest = words[1:]
            if rest[:1] in (["-n"], ["--adjustment"]):
                rest = rest[2:]
            elif rest and re.fullmatch(r"-n?-?\d+|--adjustment=-?\d+", rest[0]):
                rest = rest[1:]
            words = rest
        elif name == "timeout":
            rest = words[1:]
            while rest and rest[0].startswith("-"):
                flag = rest.pop(0)
                if flag in ("-s", "--signal", "-k", "--kill-after"):
                    rest = rest[1:]
            words = rest[1:]
        else:
            return words
    return words


def stdin_use(script: str) -> str | None:
    """Why ``script`` (a command's known create/update/delete) may run its stdin as code: it
    pipes it into a shell or interpreter, writes it as an executable or where something runs
    it, or does what the reader does not follow. None when it only writes stdin as data."""
    return _StdinReader().run(script)


def _unknown_stdin(props: dict[str, Any]) -> str | None:
    """Why an unknown stdin may be code: a known create/update/delete that can run it. An
    unknown create or update is reported on its own; with neither, nothing reads stdin."""
    for field in ("create", "update", "delete"):
        value = props.get(field)
        if isinstance(value, str) and not is_unknown(value):
            why = stdin_use(value)
            if why:
                return f"its {field} command can run it: {why}"
    return None


def command_exposure(props: dict[str, Any]) -> Exposure:
    published: list[Published] = []
    openings: list[Opening] = []
    blanket: list[str] = []
    for field in ("create", "update", "stdin"):
        value = props.get(field)
        if value is None:
            continue
        if field == "stdin" and is_unknown(value):
            why = _unknown_stdin(props)
            if why:
                blanket.append(f"has a stdin command unknown at preview, and {why}; so what "
                               "it opens can't be checked")
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
