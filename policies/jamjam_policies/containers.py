"""Docker container hygiene: rotation, restarts, health, privilege, the socket, secrets, images."""

from __future__ import annotations

import posixpath
import re
from typing import Any, Callable

from jamjam_infra.rules import RESTART_POLICIES, carries_credentials, says_secret
from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, \
    ResourceValidationPolicy

from ._exposure import CONTAINER
from ._props import is_unknown, label, props_of, strings

REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
ROTATING_DRIVERS = ("json-file", "local")
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")

Check = Callable[[str, dict[str, Any], ReportViolation], None]


def containers_only(check: Check) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type == CONTAINER:
            check(label(args), props_of(args), report)
    return validate


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    return "a value unknown at preview" if is_unknown(value) else repr(value)


def _log_rotation(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    driver = props.get("logDriver")
    if driver not in ROTATING_DRIVERS:
        report(f"{name} has logDriver {_shown(driver)} (Docker's default json-file keeps every "
               "line). Set logDriver \"json-file\" (or \"local\") "
               "with logOpts max-size \"100m\" and max-file \"5\" so logs can't fill the disk.",
               None)
        return
    opts = props.get("logOpts")
    opts = opts if isinstance(opts, dict) else {}
    missing = [key for key in ("max-size", "max-file")
               if not opts.get(key) or is_unknown(opts.get(key))]
    if missing:
        report(f"{name} has no known logOpts {' or '.join(missing)}, so its logs grow without "
               "bound. Set logOpts max-size \"100m\" and max-file \"5\".", None)


def _restart_policy(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    restart = props.get("restart")
    if restart not in RESTART_POLICIES:
        report(f"{name} has restart {_shown(restart)}, "
               "so it stays down after a crash or a reboot. Set restart \"always\" "
               "(or \"unless-stopped\").", None)


def _healthcheck(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    check = props.get("healthcheck")
    tests = strings(check.get("tests")) if isinstance(check, dict) else []
    if is_unknown(check) or any(is_unknown(t) for t in tests):
        report(f"{name} has a healthcheck unknown at preview. Declare healthcheck.tests as literal "
               "values, e.g. [\"CMD\", \"pgrep\", \"echo-server\"].", None)
    elif not tests or tests[0] == "NONE":
        report(f"{name} has no healthcheck, so a hung process looks healthy. Set healthcheck.tests "
               "(e.g. [\"CMD\", \"pgrep\", \"echo-server\"]) with interval 30s, timeout 3s, "
               "retries 3, startPeriod 5s.", None)


def _not_privileged(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    privileged = props.get("privileged")
    if privileged is True or is_unknown(privileged):
        state = "may run privileged (a value unknown at preview)" if is_unknown(privileged) \
            else "runs privileged"
        report(f"{name} {state}, which gives it root on the VPS. "
               "Remove privileged (or set it to false).", None)


def _exposes_socket(path: Any) -> bool:
    if is_unknown(path):
        return True
    if not isinstance(path, str) or not path.startswith("/"):
        return False
    path = posixpath.normpath(path)
    # A parent directory (/, /run, /var/run) carries the socket along with it.
    return any(sock == path or sock.startswith(path.rstrip("/") + "/") for sock in DOCKER_SOCKETS)


def _no_docker_socket(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    sources = []
    for field, key in (("mounts", "source"), ("volumes", "hostPath")):
        entries = props.get(field)
        if is_unknown(entries):
            sources.append((field, entries))
            continue
        for entry in entries or []:
            sources.append((field, entry.get(key) if isinstance(entry, dict) else entry))
    for field, source in sources:
        if _exposes_socket(source):
            report(f"{name} mounts {_shown(source)} from the host in {field}, which hands it the "
                   "Docker socket (root on the VPS). Remove that mount.", None)


_TOKEN_LIKE = [
    re.compile(r"eyJ[A-Za-z0-9_-]{16,}"),  # base64 of '{"': tunnel tokens, JWTs
    re.compile(r"(?:^|=)(?!/)(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[A-Za-z])"
               r"[A-Za-z0-9+/_-]{32,}={0,2}$"),
]
# Flags (--db-password, --api-key) and NAME=value words (`env TUNNEL_TOKEN=...`) are judged by
# the library's secret-name rule, the one env vars are held to (--password-file is a path).
_FLAG = re.compile(r"^--?([A-Za-z0-9][A-Za-z0-9-]*)(?:=.*)?$")
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=.+")


def _secret_reason(arg: Any) -> str | None:
    if is_unknown(arg):
        return "an argument unknown at preview (it may be a secret)"
    if not isinstance(arg, str):
        return None
    flag, assignment = _FLAG.match(arg), _ASSIGNMENT.match(arg)
    if flag and says_secret(flag.group(1)):
        return f"the flag {arg.split('=', 1)[0]}"
    if assignment and says_secret(assignment.group(1)):
        return f"{assignment.group(1)}=..., whose name says it holds a secret,"
    if carries_credentials(arg) or any(pattern.search(arg) for pattern in _TOKEN_LIKE):
        return "a token-looking value"
    return None


def _no_secret_in_command(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    for field in ("entrypoints", "command"):
        for arg in strings(props.get(field)):
            reason = _secret_reason(arg)
            if reason:
                report(f"{name} passes {reason} in {field}, where it shows in `ps`, `docker "
                       "inspect` and the Pulumi state. Pass the secret in a secret env var "
                       "instead (cloudflared reads TUNNEL_TOKEN).", None)


def _image_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = props_of(args)
    if args.resource_type == CONTAINER:
        image = props.get("image")
        if is_unknown(image):
            # A RemoteImage's id, not known until pull; that RemoteImage's name is checked.
            return
    elif args.resource_type == REMOTE_IMAGE:
        image = props.get("name")
    else:
        return
    if image_is_pinned(image):
        return
    report(f"{label(args)} uses image {_shown(image)}, which can change under the same name. "
           "Pin a version tag (e.g. cloudflare/cloudflared:2025.11.1) or a digest.", None)


def image_is_pinned(image: Any) -> bool:
    if not isinstance(image, str) or not image:
        return False
    if image.startswith("sha256:") or "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.rsplit(":", 1)[1]
    return bool(tag) and tag != "latest"


def container_policy(name: str, description: str, check: Check, *,
                     level: EnforcementLevel) -> ResourceValidationPolicy:
    """A rule about ``docker:index/container:Container`` only: ``check(label, props, report)``.

    ``level`` has no default on purpose: each rule states whether it blocks an update.
    """
    return ResourceValidationPolicy(name=name, description=description, enforcement_level=level,
                                    validate=containers_only(check))


POLICIES = [
    container_policy("container-log-rotation",
                     "Containers log with json-file or local and set logOpts max-size and "
                     "max-file, so logs can't fill the VPS disk.", _log_rotation,
                     level=EnforcementLevel.MANDATORY),
    container_policy("container-restart-policy",
                     "Containers restart always (or unless-stopped), so they come back after a "
                     "crash or a reboot.", _restart_policy, level=EnforcementLevel.MANDATORY),
    container_policy("container-healthcheck",
                     "Containers declare a healthcheck (tests set and not NONE).", _healthcheck,
                     level=EnforcementLevel.MANDATORY),
    container_policy("container-not-privileged",
                     "Containers are not privileged.", _not_privileged,
                     level=EnforcementLevel.MANDATORY),
    container_policy("container-no-docker-socket",
                     "No container mounts the Docker socket (/var/run/docker.sock, "
                     "/run/docker.sock) or a directory holding it.", _no_docker_socket,
                     level=EnforcementLevel.MANDATORY),
    container_policy("container-no-secret-in-command",
                     "Container command and entrypoints carry no secret (no --token, no "
                     "token-looking value); secrets go in secret env vars.",
                     _no_secret_in_command, level=EnforcementLevel.MANDATORY),
    ResourceValidationPolicy(
        name="container-image-pinned",
        description=("Container images (and RemoteImage names) are pinned to a version tag other "
                     "than latest, or to a digest."),
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=_image_pinned,
    ),
]
