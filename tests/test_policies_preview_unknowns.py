"""A real first preview: values that do not exist yet (token values, image ids, tunnel ids,
generated passwords) are unknown, and the pack must pass what is safe and still catch what is
not.

The port rules read a ``command:remote:Command``'s ``stdin`` as code only when its known
``create``/``update``/``delete`` can run it (policies/jamjam_policies/_exposure.py). The cases
below are each way stdin becomes code (they fail), the shapes that write it as data (they pass),
and both jamjam stacks and a library program with a post-deploy run, rendered as a first preview
(``tools.render.render(..., preview=True)``) and checked with the whole pack.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.policy_fixtures import (
    COMMAND, FIREWALL, UNKNOWN, assert_break, changed, secret, violations,
)
from jamjam_policies import ALL_POLICIES  # noqa: E402 (path set by policy_fixtures)
from jamjam_policies._exposure import executed_place, stdin_use  # noqa: E402
from jamjam_policies.ports import POLICIES as PORT_POLICIES  # noqa: E402
from jamjam_infra.container import DEFAULT_PIDS_LIMIT
from tools import policy_check
from tools.render import is_secret, render
from tools import _pulumi_compat as compat

PORT_RULES = [p.name for p in PORT_POLICIES]
RESOURCE_PORT_RULES = [p.name for p in PORT_POLICIES if p.name != "tunnel-origin-ports-never-public"]
SIGNALING = "signaling-port-never-public"
ALLOW = "public-ports-allowlisted"
DB = "database-ports-never-public"

CONNECTION = FIREWALL["connection"]


def _file(path: str, mode: str = "0600") -> str:
    """A file written from stdin the way the component library's remote_file writes it."""
    staged = f"{path}.pulumi-new"
    return (f"sudo -n install -D -o root -g root -m {mode} /dev/stdin {staged} && "
            f"sudo -n mv -f {staged} {path}")


def _command(create: str, stdin=UNKNOWN, **extra) -> dict:
    return {"connection": CONNECTION, "create": create, "update": create, "stdin": stdin, **extra}


POST_DEPLOY = (  # the library's post-deploy shape (components/container.py), as rendered
    "bash -c 'set -eu\nf=$(sudo -n mktemp /run/jamjam-post-deploy.XXXXXX)\n"
    "trap '\"'\"'sudo -n rm -f \"$f\"'\"'\"' EXIT\nsudo -n tee \"$f\" >/dev/null\n"
    "sudo -n docker run --rm --network web --cap-drop ALL --pids-limit 512 --pull never "
    "--env-file \"$f\" ghcr.io/example/app:1.0 python manage.py migrate --noinput'")

# --- unknown stdin written as data: no exposure ------------------------------------------

DATA_WRITES = {
    "rclone config (0600)": _command(_file("/etc/jamjam/rclone.conf"),
                                     delete="sudo -n rm -f /etc/jamjam/rclone.conf"),
    "webhook file (0600)": _command(_file("/etc/jamjam/alert-webhook")),
    "a 0644 data file": _command(_file("/srv/app/settings.json", "0644")),
    "symbolic mode": _command(_file("/etc/jamjam/x", "u=rw,go=")),
    "tee to a data file": _command("sudo -n tee /etc/jamjam/x >/dev/null"),
    "cat into a data file": _command("sudo -n sh -c 'cat > /var/lib/app/seed.json'"),
    "post-deploy env file": {"connection": CONNECTION, "create": POST_DEPLOY,
                             "stdin": secret(UNKNOWN)},
}


@pytest.mark.parametrize("name", DATA_WRITES)
def test_unknown_stdin_written_as_data_passes_the_port_rules(name):
    # The stack rule (tunnel origins) reads the same exposure; the rendered stacks below run it.
    for rule in RESOURCE_PORT_RULES:
        assert violations(rule, COMMAND, DATA_WRITES[name]) == [], (rule, name)


# --- unknown stdin the command can run: fail closed --------------------------------------

BREAKS = [
    (SIGNALING, COMMAND, _command(_file("/etc/cron.d/jamjam-x", "0644")),
     "writes it to /etc/cron.d/jamjam-x.pulumi-new, and cron runs what is there"),
    (ALLOW, COMMAND, _command(_file("/etc/cron.hourly/jamjam-x", "0644")), "cron runs"),
    (DB, COMMAND, _command(_file("/etc/systemd/system/x.service", "0644")), "systemd runs"),
    (SIGNALING, COMMAND, _command(_file("/etc/ufw/after.rules", "0640")), "firewall's configuration"),
    (SIGNALING, COMMAND, _command(_file("/etc/sudoers.d/jamjam", "0440")), "it grants root"),
    (SIGNALING, COMMAND, _command(_file("/usr/local/sbin/jamjam-x", "0644")),
     "directory of executables"),
    (SIGNALING, COMMAND, _command(_file("/opt/jamjam/scripts/job.sh", "0644")),
     "scheduled jobs run the scripts there"),
    (SIGNALING, COMMAND, _command(_file("/etc/jamjam/x", "0755")),
     "writes it as an executable file, /etc/jamjam/x.pulumi-new"),
    (ALLOW, COMMAND, _command(_file("/etc/jamjam/x", "u+x")), "as an executable file"),
    (SIGNALING, COMMAND, _command("sudo -n install -D /dev/stdin /etc/jamjam/x"),
     "as an executable file"),  # install's default mode is 0755
    (SIGNALING, COMMAND, _command("sudo -n bash -s -- apply"), "`sudo -n bash -s -- apply` runs stdin"),
    (ALLOW, COMMAND, _command("cat | sudo -n bash"), "`sudo -n bash` runs stdin as a shell script"),
    (SIGNALING, COMMAND, _command("sudo -n tee /etc/jamjam/x | sh"), "`sh` runs stdin"),
    (SIGNALING, COMMAND, _command("sudo -n python3 -"), "can't tell it from a script runner"),
    (SIGNALING, COMMAND, _command('x="$(cat)"; eval "$x"'), "captures stdin"),
    (SIGNALING, COMMAND, _command("sudo -n bash -c 'sh'"), "`sh` runs stdin"),
    (SIGNALING, COMMAND, _command(_file("/etc/jamjam/x") + " && sudo -n chmod 0755 /etc/jamjam/x"),
     "makes the file it wrote executable"),
    (SIGNALING, COMMAND, _command(_file("/etc/jamjam/x") + " && sudo -n bash /etc/jamjam/x"),
     "runs the file it wrote as a shell script"),
    (SIGNALING, COMMAND, _command(_file("/etc/jamjam/x") + " && sudo -n /etc/jamjam/x"),
     "runs the file it wrote"),
    (SIGNALING, COMMAND, _command(_file("/etc/jamjam/x") + " && sudo -n cp /etc/jamjam/x /etc/cron.d/x"),
     "writes it to /etc/cron.d/x"),
    (SIGNALING, COMMAND, _command("docker run -i --rm img:1 sh"), "passes stdin into a container"),
    (SIGNALING, COMMAND, _command("docker load"), "may read stdin as an image"),
    (SIGNALING, COMMAND, _command("install -m 0644 /dev/stdin settings.json"),
     "a path the pack can't resolve"),
    (SIGNALING, COMMAND, _command('sudo -n tee "$DEST"'), "a path the pack can't resolve"),
    (SIGNALING, COMMAND, _command("sudo -n sh -c `echo bash`"), "backquoted"),
    # The delete reads the same stdin.
    (SIGNALING, COMMAND, {**_command(_file("/etc/jamjam/x")), "delete": "sudo -n bash -s"},
     "its delete command can run it"),
    # Unknown create/update stay fail-closed, whatever stdin is.
    (SIGNALING, COMMAND, changed(_command(_file("/etc/jamjam/x")), "create", UNKNOWN),
     "create command unknown at preview"),
    (ALLOW, COMMAND, changed(_command(_file("/etc/jamjam/x")), "update", UNKNOWN),
     "update command unknown at preview"),
    (DB, COMMAND, changed(FIREWALL, "stdin", UNKNOWN), "stdin command unknown at preview"),
]


@pytest.mark.parametrize("policy_name,type_,inputs,expected", BREAKS,
                         ids=[f"{c[0]}-{c[3][:50]}" for c in BREAKS])
def test_each_way_an_unknown_stdin_can_run_is_reported(policy_name, type_, inputs, expected):
    assert_break(policy_name, type_, inputs, expected)


def test_a_known_stdin_is_still_read_for_what_it_opens():
    """The relaxation is for unknown stdin only: a known script is scanned as before."""
    data = _command(_file("/etc/jamjam/x"), stdin="#!/bin/sh\nufw allow 8080/tcp\n")
    [message] = violations(SIGNALING, COMMAND, data)
    assert "ufw allow 8080/tcp" in message


@pytest.mark.parametrize("path,executed", [
    ("/etc/jamjam/rclone.conf", False), ("/run/jamjam-post-deploy.XXXXXX", False),
    ("/var/lib/jamjam/state", False), ("/etc/cron.d/x", True), ("/etc/crontab", True),
    ("/etc/rc.local", True), ("/etc/init.d/x", True), ("/usr/bin/x", True),
    ("/srv/tools/bin/x", True), ("/etc/docker/daemon.json", True), ("/home/ops/.bashrc", True),
    ("/etc/profile.d/x.sh", True), ("/etc/network/if-up.d/x", True), ("/etc/iptables/rules.v4", True),
])
def test_executed_places(path, executed):
    assert (executed_place(path) is not None) == executed


def test_the_reader_follows_quotes_substitutions_and_wrappers():
    assert stdin_use("sudo -n -u root env A=1 nice -n 5 bash -s") is not None
    assert stdin_use("sudo -n --preserve-env bash -c 'set -e; tee /etc/jamjam/x >/dev/null'") is None
    assert stdin_use("sudo -n bash -c 'tee \"$(mktemp /etc/cron.d/x.XXXX)\"'") is not None
    assert stdin_use("f=$(mktemp); tee \"$f\" >/dev/null; bash \"$f\"") is not None
    assert stdin_use("f=$(mktemp); tee \"$f\" >/dev/null; docker run --env-file \"$f\" i:1") is None
    assert stdin_use("f=$(mktemp --tmpdir=/etc/cron.d); tee \"$f\"") is not None
    assert stdin_use("f=$(mktemp -d); tee \"$f/x\"") is not None
    assert stdin_use("echo 'bash -s' > /dev/null") is None, "quoted text is not a command"
    assert stdin_use("sudo -e /etc/jamjam/x") is not None, "an unknown sudo mode fails closed"
    assert stdin_use("bash -c 'unbalanced") is not None
    # The shell's own rules, where a naive reader would miss a command:
    assert stdin_use("sudo -n tee /etc/jamjam/x#; bash -s") is not None, "# inside a word"
    assert stdin_use("echo '#' ; bash -s") is not None, "a quoted #"
    assert stdin_use("sudo -n tee /etc/jamjam/x  # bash -s") is None, "a real comment"
    assert stdin_use("install -m 0644 /dev/stdin \\\n  /etc/cron.d/x") is not None
    assert stdin_use("bash <&0") is not None and stdin_use("bash < /dev/stdin") is not None
    assert stdin_use("bash -euo pipefail -c 'tee /etc/jamjam/x >/dev/null'") is None
    assert stdin_use("install -m 0644 /dev/stdin /etc/jamjam/x && "
                     "ln -s /etc/jamjam/x /usr/local/bin/") is not None, "into a directory"


# --- whole programs at a first preview ----------------------------------------------------

@pytest.fixture(scope="module")
def previews():
    return {stack: render(stack, preview=True) for stack in ("production", "test")}


def test_a_first_preview_has_the_unknowns_a_real_one_has(previews):
    production = previews["production"]
    rclone = production.named("logs-rclone-config")
    assert rclone.inputs["stdin"] == compat.UNKNOWN or (
        is_secret(rclone.inputs["stdin"]) and rclone.inputs["stdin"]["value"] == compat.UNKNOWN)
    for stack in previews.values():
        for container in stack.of_type("docker:index/container:Container"):
            assert container.inputs["image"] == compat.UNKNOWN, container.name
        config = stack.of_type("cloudflare:index/zeroTrustTunnelCloudflaredConfig:"
                               "ZeroTrustTunnelCloudflaredConfig")
        assert config and all(c.inputs["tunnelId"] == compat.UNKNOWN for c in config)


@pytest.mark.parametrize("stack", ["production", "test"])
def test_a_first_preview_passes_every_mandatory_rule(previews, stack):
    found = policy_check.check(stack, previews[stack].resources)
    mandatory = [v for v in found if v.level == "mandatory"]
    assert mandatory == [], policy_check.format_report(mandatory)


def _with(resources, name: str, inputs: dict) -> list:
    extra = SimpleNamespace(type=COMMAND, name=name, urn=f"urn:pulumi:production::jamjam::"
                            f"{COMMAND}::{name}", inputs=inputs, parent=None, provider=None,
                            options={"dependencies": []})
    return [*resources, extra]


@pytest.mark.parametrize("inputs,expected", [
    ({"connection": CONNECTION, "create": UNKNOWN}, "create command unknown at preview"),
    (_command("sudo -n bash -s"), "runs stdin as a shell script"),
    (_command(_file("/etc/cron.d/jamjam-extra", "0644")), "cron runs what is there"),
])
def test_a_first_preview_still_catches_an_exposing_command(previews, inputs, expected):
    resources = _with(previews["production"].resources, "exposing", inputs)
    found = [v for v in policy_check.check("production", resources)
             if v.level == "mandatory" and v.resource.endswith("::exposing")]
    assert {v.policy for v in found} >= {SIGNALING, ALLOW, DB}, found
    assert all(expected in v.message for v in found if v.policy in PORT_RULES)


def test_a_post_deploy_run_is_known_at_preview_and_passes_the_port_rules():
    """A library program with a migration and a generated password: at a first preview the
    image id and the password are unknown, the post-deploy command line is not."""
    from tests import test_library as lib
    from jamjam_infra.container import PostDeploy
    from jamjam_infra.host import Host, HostArgs
    from jamjam_infra.secrets import generated_secret
    def program() -> None:
        password = generated_secret("db-password")
        app = lib.app_spec(secret_env={"DATABASE_URL": password.apply(lambda p: f"postgres://{p}@db/app")},
                       post_deploy=PostDeploy((("python", "manage.py", "migrate"),)))
        Host("vps", HostArgs(ssh=lib.ssh_args(), stack="production", network="web",
                             containers=[app]))

    from tests.program_helpers import run_program
    monitor = run_program(program, project="library", stack="production", preview=True)
    resources = monitor.registrations
    run = next(r for r in resources if r.name == "web-app-post-deploy")
    assert isinstance(run.inputs["create"], str) and compat.UNKNOWN not in run.inputs["create"]
    assert "ghcr.io/example/app:1.0" in run.inputs["create"]
    assert run.inputs["triggers"] == [compat.UNKNOWN], "the image id reruns it"
    assert is_secret(run.inputs["stdin"]) and run.inputs["stdin"]["value"] == compat.UNKNOWN
    limit = next(r for r in resources if r.name == "web-app-pids-limit")
    assert limit.inputs["create"] == \
        f"sudo -n docker update --pids-limit {DEFAULT_PIDS_LIMIT} web-app"
    found = [v for v in policy_check.check("production", resources)
             if v.policy in PORT_RULES and v.level == "mandatory"]
    assert found == [], policy_check.format_report(found)


def test_every_port_rule_is_checked_here():
    assert set(PORT_RULES) <= {p.name for p in ALL_POLICIES}
    assert {SIGNALING, ALLOW, DB} <= set(PORT_RULES)
