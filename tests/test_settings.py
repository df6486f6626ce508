"""Bad stack config fails before any resource is registered, with one line per bad key naming
the key, the problem and a command that fixes it; Pulumi.yaml declares exactly what settings.py
knows."""

from __future__ import annotations

import shlex
from copy import deepcopy
from typing import Any

import pulumi
import pytest
import yaml

import settings
from jamjam_infra.host import DEBIAN_RELEASES
from jamjam_infra.schema import settle
from settings import SettingsError
from tools.render import ROOT, engine_config, render, reveal, stack_config

SSH_KEY = {"secret": "-----EXAMPLE OPENSSH PRIVATE KEY for settings tests-----"}

# (override or removal, key named in the message, words the message must contain)
BAD_INPUTS = [
    ({"remove": ["vpsAddress"]}, "jamjam:vpsAddress", "not set"),
    ({"remove": ["signalingHostname"]}, "jamjam:signalingHostname", "not set"),
    ({"remove": ["images"]}, "jamjam:images.signaling", "not set"),
    ({"remove": ["sshPrivateKey"]}, "jamjam:sshPrivateKey", "not set"),
    ({"signalingHostname": "signaling.example.com"}, "jamjam:signalingHostname", "zone"),
    ({"signalingHostname": "bad_host!.koeda.me"}, "jamjam:signalingHostname", "not a valid DNS"),
    ({"zone": "not a zone"}, "jamjam:zone", "not a valid DNS zone"),
    ({"vpsAddress": "203.0.113"}, "jamjam:vpsAddress", "not an IP address"),
    ({"vpsAddress": "127.0.0.1"}, "jamjam:vpsAddress", "reachable address"),
    ({"vpsAddress": "2001:db8::1"}, "jamjam:vpsAddress", "IPv4"),
    ({"echoDelayMs": "0"}, "jamjam:echoDelayMs", "whole number"),
    ({"echoDelayMs": "-5"}, "jamjam:echoDelayMs", "whole number"),
    ({"echoDelayMs": "1.5"}, "jamjam:echoDelayMs", "whole number"),
    ({"echoDelayMs": "soon"}, "jamjam:echoDelayMs", "whole number"),
    ({"logLevel": "verbose"}, "jamjam:logLevel", "one of"),
    ({"images": {"signaling": "ghcr.io/koeda/jamjam-signaling-server",
                 "echo": "ghcr.io/koeda/jamjam-echo-server:0.1.0",
                 "cloudflared": "cloudflare/cloudflared:2025.11.1"}},
     "jamjam:images.signaling", "tag or digest"),
    ({"images": {"signaling": "ghcr.io/koeda/jamjam-signaling-server:0.1.0",
                 "echo": "ghcr.io/koeda/jamjam-echo-server:0.1.0",
                 "cloudflared": "cloudflare/cloudflared:latest"}},
     "jamjam:images.cloudflared", "latest"),
    ({"images": {"signaling": "ghcr.io/koeda/jamjam-signaling-server:0.1.0",
                 "echo": "ghcr.io/koeda/jamjam-echo-server:0.1.0"}},
     "jamjam:images.cloudflared", "not set"),
    ({"images": {"signaling": "ghcr.io/koeda/jamjam-signaling-server:0.1.0",
                 "echo": "ghcr.io/koeda/jamjam-echo-server:0.1.0",
                 "cloudflared": "cloudflare/cloudflared:2025.11.1", "redis": "redis:7"}},
     "jamjam:images.redis", "is not the image of any container"),
    ({"images": "cloudflare/cloudflared:2025.11.1"}, "jamjam:images", "map of settings"),
    ({"ports": {"echo": 8080}}, "jamjam:ports.echo", "clashes"),
    ({"ports": {"echo": 22}}, "jamjam:ports.echo", "clashes"),
    ({"ssh": {"port": 8080}}, "jamjam:ssh.port", "clashes"),
    ({"ssh": {"port": 0}}, "jamjam:ssh.port", "whole number"),
    ({"ports": {"ssh": 2222}}, "jamjam:ports.ssh", "moved to jamjam:ssh.port"),
    ({"ports": {"echo": 70000}}, "jamjam:ports.echo", "whole number"),
    ({"cloudflareAccountId": "my-account"}, "jamjam:cloudflareAccountId", "32-character hex"),
    ({"cloudflareZoneId": "ABC"}, "jamjam:cloudflareZoneId", "32-character hex"),
    ({"ssh": {"user": "root"}}, "jamjam:ssh.user", "must not be root"),
    ({"ssh": {"user": "Jam Jam"}}, "jamjam:ssh.user", "Unix user name"),
    ({"ssh": {"hostKey": "not-a-key"}}, "jamjam:ssh.hostKey", "public key"),
    ({"sshPrivateKey": "-----EXAMPLE OPENSSH PRIVATE KEY in plaintext-----"},
     "jamjam:sshPrivateKey", "plaintext"),
    ({"sshPrivateKey": {"secret": "hunter2"}}, "jamjam:sshPrivateKey", "private key"),
    ({"alertWebhookUrl": {"secret": "http://insecure.example/hook"}},
     "jamjam:alertWebhookUrl", "https://"),
    ({"logArchive": {"enabled": "yes"}}, "jamjam:logArchive.enabled", "true or false"),
    ({"logArchive": {"enabled": True, "retentionDays": 0}},
     "jamjam:logArchive.retentionDays", "whole number"),
    ({"logArchive": {"enabled": True, "bucket": "Jamjam_Logs"}},
     "jamjam:logArchive.bucket", "bucket name"),
    ({"logArchive": {"enabled": True, "schedule": "hourly"}},
     "jamjam:logArchive.schedule", "cron schedule"),
    ({"operations": {"diskAlertPercent": 120}}, "jamjam:operations.diskAlertPercent",
     "whole number"),
    ({"operations": {"selfheal": True}}, "jamjam:operations.selfheal", "not a known setting"),
    # Unknown top-level keys, like unknown keys in a section, name the closest known key.
    ({"port": "8080"}, "jamjam:port", "did you mean jamjam:ports?"),
    ({"echoDelay": "3000"}, "jamjam:echoDelay", "did you mean jamjam:echoDelayMs?"),
    ({"sshPrivatekey": {"secret": "-----EXAMPLE OPENSSH PRIVATE KEY typo-----"}},
     "jamjam:sshPrivatekey", "did you mean jamjam:sshPrivateKey?"),
    ({"completelyUnrelated": "x"}, "jamjam:completelyUnrelated", "known: zone"),
    ({"operations": {"diskAlertPct": 85}}, "jamjam:operations.diskAlertPct",
     "did you mean diskAlertPercent?"),
    # jamjam:containers (issue 12's hardening overrides).
    ({"containers": "hardened"}, "jamjam:containers", "map of settings"),
    ({"containers": {"signalling": {"memoryMb": 256}}}, "jamjam:containers.signalling",
     "not a known role; did you mean signaling?"),
    ({"containers": {"echo": 512}}, "jamjam:containers.echo", "map of settings"),
    ({"containers": {"echo": {"memory": 256}}}, "jamjam:containers.echo.memory",
     "did you mean memoryMb?"),
    ({"containers": {"echo": {"memoryMb": 8}}}, "jamjam:containers.echo.memoryMb",
     "whole number from 16 to 65536"),
    ({"containers": {"signaling": {"memoryMb": "lots"}}}, "jamjam:containers.signaling.memoryMb",
     "whole number"),
    ({"containers": {"echo": {"pidsLimit": 100000}}}, "jamjam:containers.echo.pidsLimit",
     "whole number from 16 to 65536"),
    ({"containers": {"cloudflared": {"readOnlyRootfs": "yes"}}},
     "jamjam:containers.cloudflared.readOnlyRootfs", "true or false"),
    ({"containers": {"echo": {"user": "Echo User"}}}, "jamjam:containers.echo.user",
     "uid"),
    ({"containers": {"echo": {"user": "1000:"}}}, "jamjam:containers.echo.user", "uid"),
    ({"containers": {"echo": {"capAdd": "NET_ADMIN"}}}, "jamjam:containers.echo.capAdd",
     "must be a list"),
    ({"containers": {"echo": {"capAdd": ["NET_BIND_SERVICES"]}}},
     "jamjam:containers.echo.capAdd", "did you mean NET_BIND_SERVICE?"),
    ({"containers": {"echo": {"capAdd": ["ALL"]}}}, "jamjam:containers.echo.capAdd",
     "one by one"),
    # jamjam:vpsDebianVersion: the bootstrap supports Debian 12 and 13 only.
    ({"vpsDebianVersion": 11}, "jamjam:vpsDebianVersion", "12 (bookworm) or 13 (trixie)"),
    ({"vpsDebianVersion": "trixie"}, "jamjam:vpsDebianVersion", "Debian release"),
    ({"vpsDebianVersion": 14}, "jamjam:vpsDebianVersion", "Debian release"),
]

# Cases whose one mistake is several bad keys: a missing map is one line per key it must hold.
LINES = {("jamjam:images.signaling", "not set"): 3}


def _render_bad(change: dict) -> Exception:
    change = dict(change)
    remove = change.pop("remove", [])
    with pytest.raises(SettingsError) as caught:
        render("production", overrides=change, remove=remove)
    return caught.value


@pytest.mark.parametrize("change,key,words", BAD_INPUTS, ids=[c[1] + ":" + c[2] for c in BAD_INPUTS])
def test_bad_value_fails_early_with_one_line_naming_the_key(change, key, words):
    error = _render_bad(change)
    assert str(error) == "\n".join(error.lines)
    assert len(error.lines) == LINES.get((key, words), 1), error.lines
    assert error.lines[0].startswith(key + ":"), error.lines
    assert words in error.lines[0], error.lines
    for line in error.lines:
        assert "; fix: pulumi config " in line, line
        assert "\n" not in line
    assert error.registered == (), "resources were registered before the config error"


def _fixes(line: str) -> list[list[str]]:
    """The commands of a line's fix, as the shell would split them."""
    return [shlex.split(command) for command in line.split("; fix: ", 1)[1].split(" && ")]


@pytest.mark.parametrize("change,key,words", BAD_INPUTS, ids=[c[1] + ":" + c[2] for c in BAD_INPUTS])
def test_every_fix_is_a_command_for_this_stack(change, key, words):
    for line in _render_bad(change).lines:
        bad_key = line.split(": ", 1)[0]
        for argv in _fixes(line):
            assert argv[:3] in (["pulumi", "config", "set"], ["pulumi", "config", "rm"]), line
            assert argv[argv.index("--stack") + 1] == "production", line
            named = next(a for a in argv[3:] if a.startswith("jamjam:"))
            if "." in named or "[" in named:
                assert "--path" in argv, line
        if "is not set" in line or "plaintext" in line:
            set_argv = _fixes(line)[-1]
            assert set_argv[2] == "set" and bad_key in set_argv, line
            assert ("--secret" in set_argv) == (bad_key.split(":")[1] in settings.SECRET_KEYS), line


def _run_fix(config: dict[str, Any], secrets: set[str], line: str) -> None:
    """Apply a fix to short-key config as `pulumi config set/rm [--path]` would: with --path,
    "true"/"false" become booleans and whole numbers numbers; top-level values stay strings."""
    for argv in _fixes(line):
        args = [a for a in argv[3:] if a not in ("--path", "--secret")]
        del args[args.index("--stack"):args.index("--stack") + 2]
        key = args[0].split(":", 1)[1]
        if "--path" not in argv:
            if argv[2] == "rm":
                config.pop(key, None)
            else:
                config[key] = args[1]
                if "--secret" in argv:
                    secrets.add(key)
            continue
        parts = key.replace("[", ".[").split(".")
        node = config
        for part, following in zip(parts, parts[1:]):
            if not isinstance(node.get(part), (dict, list)):
                node[part] = [] if following.startswith("[") else {}
            node = node[part]
        last = parts[-1]
        if argv[2] == "rm":
            node.pop(last, None)
            continue
        value: Any = args[1]
        if value in ("true", "false"):
            value = value == "true"
        elif value.isdigit():
            value = int(value)
        if last.startswith("["):
            index = int(last.strip("[]"))
            node.extend([None] * (index + 1 - len(node)))
            node[index] = value
        else:
            node[last] = value


@pytest.mark.parametrize("change,key,words", BAD_INPUTS, ids=[c[1] + ":" + c[2] for c in BAD_INPUTS])
def test_pasting_the_fix_clears_that_key(change, key, words):
    """Each fix, run as printed, leaves its key no longer reported (fixes that read a file or
    the network, the SSH key and host key, are checked for shape above instead)."""
    lines = _render_bad(change).lines
    change = deepcopy(change)
    remove = set(change.pop("remove", []))
    config = {k.split(":", 1)[1]: v for k, v in stack_config("production").items()}
    config.update({k: v for k, v in change.items()})
    for name in remove:
        config.pop(name, None)
    secrets = {k for k, v in config.items() if isinstance(v, dict) and set(v) == {"secret"}}
    config = {k: v["secret"] if k in secrets else v for k, v in config.items()}
    pasteable = [line for line in lines if "$(" not in line and "< " not in line]
    for line in pasteable:
        _run_fix(config, secrets, line)
    overrides = {k: {"secret": v} if k in secrets else v for k, v in config.items()}
    gone = sorted(set(stack_config("production")) - {f"jamjam:{k}" for k in config})
    try:
        render("production", overrides=overrides, remove=[k.split(":", 1)[1] for k in gone])
    except SettingsError as error:
        still = {line.split(": ", 1)[0] for line in error.lines}
        for line in pasteable:
            assert line.split(": ", 1)[0] not in still, (line, error.lines)


def test_several_bad_keys_are_several_lines_in_one_error():
    error = _render_bad({"logLevel": "verbose", "echoDelayMs": "soon", "port": "8080",
                         "ports": {"echo": 22, "sssh": 2222},
                         "containers": {"echo": {"pidsLimit": 1}}})
    keys = [line.split(": ", 1)[0] for line in error.lines]
    assert keys == ["jamjam:port", "jamjam:logLevel", "jamjam:echoDelayMs", "jamjam:ports.sssh",
                    "jamjam:containers.echo.pidsLimit", "jamjam:ports.echo"], error.lines
    assert error.registered == ()


def test_missing_map_hint_is_a_pasteable_path_command():
    error = _render_bad({"remove": ["images"]})
    assert error.lines[0] == (
        "jamjam:images.signaling: is not set; fix: pulumi config set --stack production "
        "--path 'jamjam:images.signaling' ghcr.io/acme/app:1.0.0")


def test_a_secret_in_error_messages_is_never_echoed():
    error = _render_bad({"sshPrivateKey": {"secret": "hunter2-do-not-print"}})
    assert "hunter2" not in str(error)
    # Under a mistyped key, in plaintext or not, a secret is still not shown.
    for value in ("hunter2 PRIVATE KEY, typed in", {"secret": "hunter2 PRIVATE KEY, typed in"}):
        error = _render_bad({"sshPrivatekey": value})
        assert "hunter2" not in str(error) and "did you mean jamjam:sshPrivateKey" in str(error)
        assert "--secret jamjam:sshPrivateKey < ~/.ssh/jamjam_ed25519" in str(error)
    error = _render_bad({"alertWebhookURL": "https://hooks.example/hunter2"})
    assert "hunter2" not in str(error) and "--secret jamjam:alertWebhookUrl" in str(error)


def test_there_are_at_least_fifteen_distinct_bad_inputs():
    assert len({(c[1], c[2]) for c in BAD_INPUTS}) >= 15


def test_operator_keys_missing_are_reported_not_invented_outside_the_plan():
    with pytest.raises(SettingsError) as caught:
        render("test", use_examples=False)
    assert str(caught.value).startswith("jamjam:")
    assert "pulumi config set" in str(caught.value)


def _load(overrides: dict | None = None, remove: tuple[str, ...] = ()) -> settings.Settings:
    config, secret_keys, _ = engine_config("production", overrides, remove)
    pulumi.runtime.set_all_config(config, secret_keys)
    return settings.load(stack="production")


def test_containers_unset_means_library_defaults_for_every_role():
    import jamjam_app
    # Unset here, whatever the stack file overrides today.
    loaded = _load(remove=("containers",))
    assert loaded.values["containers"] == {}
    specs = jamjam_app.containers(loaded, tunnel_token=pulumi.Output.secret("t"))
    assert settle(loaded.values, specs) == specs, "no override: the specs as declared"


def test_containers_overrides_are_parsed_per_role():
    loaded = _load({"containers": {
        "echo": {"memoryMb": 256, "pidsLimit": "128", "readOnlyRootfs": "true",
                 "capAdd": ["cap_net_bind_service", "NET_BIND_SERVICE", "NET_RAW"]},
        "cloudflared": {"user": 65532, "readOnlyRootfs": True, "capAdd": []},
        "signaling": {"user": "nobody:nogroup"},
    }})
    found = loaded.values["containers"]
    assert found["echo"] == {"memoryMb": 256, "pidsLimit": 128, "readOnlyRootfs": True,
                             "user": None, "capAdd": ("NET_BIND_SERVICE", "NET_RAW")}
    assert found["cloudflared"]["user"] == "65532" and found["cloudflared"]["capAdd"] == ()
    assert found["cloudflared"]["readOnlyRootfs"] is True
    assert found["cloudflared"]["memoryMb"] is None
    assert found["signaling"]["user"] == "nobody:nogroup" and found["signaling"]["capAdd"] is None


def test_project_defaults_fill_a_missing_section_like_the_cli():
    loaded = _load()
    assert (loaded.signaling_port, loaded.echo_port, loaded.ssh.port) == (8080, 5000, 22)
    config, _, _ = engine_config("production", remove=["ports", "ssh"])
    assert yaml.safe_load(config["jamjam:ports"]) == {"signaling": 8080, "echo": 5000}
    assert yaml.safe_load(config["jamjam:ssh"])["port"] == 22
    # A stack's own map is taken whole, never merged with the project's default.
    config, _, _ = engine_config("production", {"ports": {"echo": 5001}})
    assert yaml.safe_load(config["jamjam:ports"]) == {"echo": 5001}


def test_pulumi_yaml_declares_exactly_what_settings_knows():
    declared = (yaml.safe_load((ROOT / "Pulumi.yaml").read_text()) or {}).get("config") or {}
    expected = settings.project_config()
    block = yaml.safe_dump({"config": expected}, sort_keys=False, width=1000)
    assert declared == expected, f"Pulumi.yaml's config block should read:\n{block}"
    known = {spec.key for spec in settings.TOP_LEVEL}
    assert {key.split(":", 1)[1] for key in declared} == known
    for key in settings.SECRET_KEYS:
        spec = next(s for s in settings.TOP_LEVEL if s.key == key)
        # A required secret is declared secret (the CLI then refuses it in plaintext); an
        # optional one cannot be (see settings.project_config), and load() refuses it instead.
        assert declared[f"jamjam:{key}"].get("secret", False) == (spec.default is settings.REQUIRED)
    for spec in settings.TOP_LEVEL:
        if isinstance(spec, settings.Section):
            for item in spec.fields:
                assert item.description and item.example is not None


def test_every_stack_value_has_the_type_pulumi_yaml_declares():
    """What the CLI checks before the program runs (pkg/workspace ValidateConfigValue)."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    checks = {"string": lambda v: isinstance(v, str),
              "integer": lambda v: isinstance(v, int) or (isinstance(v, str) and v.isdigit()),
              "boolean": lambda v: isinstance(v, bool) or v in ("true", "false"),
              "object": lambda v: isinstance(v, dict)}
    for key, declaration in declared.items():
        # The CLI refuses to load a project whose default does not fit its type.
        if "default" in declaration:
            assert checks[declaration["type"]](declaration["default"]), key
    for stack in ("production", "test"):
        for key, value in stack_config(stack).items():
            assert key in declared, f"Pulumi.{stack}.yaml sets {key}, which Pulumi.yaml lacks"
            if isinstance(value, dict) and "secure" in value:
                continue
            assert checks[declared[key]["type"]](value), (stack, key, value)


def test_good_overrides_are_accepted():
    stack = render("test", overrides={"echoDelayMs": "250", "logLevel": "trace",
                                      "ports": {"echo": 5001}})
    echo = stack.named("jamjam-echo")
    assert "--delay" in echo.inputs["command"]
    assert echo.inputs["command"][echo.inputs["command"].index("--delay") + 1] == "250"
    assert "RUST_LOG=trace" in echo.inputs["envs"]
    assert echo.inputs["ports"] == [{"internal": 5001.0, "external": 5001.0, "protocol": "udp"}]


FIX_BIN = ROOT / "tests/fixtures/config-fix-bin"


def _spec(path: str) -> settings.Setting:
    top, _, rest = path.partition(".")
    spec = next(s for s in settings.TOP_LEVEL if s.key == top)
    if isinstance(spec, settings.Section):
        return spec.get(rest.split(".")[-1].split("[")[0])
    return spec


def test_fixes_that_read_a_file_or_the_host_work_when_pasted(tmp_path):
    """The fixes that cannot be replayed in Python (`< ~/.ssh/...`, `"$(ssh-keyscan ...)"`) run
    in bash against a recording `pulumi` and a fixed `ssh-keyscan` (tests/fixtures/
    config-fix-bin); what reaches `pulumi config set` must be a good value for the key."""
    import subprocess

    assert subprocess.run(["shellcheck", *map(str, FIX_BIN.iterdir())]).returncode == 0
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key_text = "-----EXAMPLE OPENSSH PRIVATE KEY (fix test)-----\n"
    (home / ".ssh/jamjam_ed25519").write_text(key_text)
    lines = [line for change, _, _ in BAD_INPUTS for line in _render_bad(change).lines
             if "$(" in line or "< " in line]
    assert any("ssh-keyscan" in line for line in lines)
    assert any("< ~/.ssh/jamjam_ed25519" in line for line in lines)
    for index, line in enumerate(lines):
        log = tmp_path / f"log{index}"
        log.mkdir()
        fix = line.split("; fix: ", 1)[1]
        env = {"PATH": f"{FIX_BIN}:/usr/bin:/bin", "HOME": str(home), "FAKE_PULUMI_LOG": str(log)}
        run = subprocess.run(["bash", "-c", fix], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, (fix, run.stderr)
        calls = sorted(p for p in log.iterdir() if not p.name.endswith(".stdin"))
        set_call = calls[-1]
        argv = set_call.read_bytes().decode().split("\0")[:-1]
        assert argv[:2] == ["config", "set"], argv
        key = next(a for a in argv if a.startswith("jamjam:"))
        stdin = set_call.with_name(set_call.name + ".stdin")
        value = stdin.read_text() if stdin.exists() else argv[-1]
        if stdin.exists():
            assert value == key_text and "--secret" in argv
        _spec(key.split(":", 1)[1]).parse(value.strip())


# --- vpsDebianVersion: which Debian the VPS runs, and what its Docker can do ----------------

def _healthchecks(stack) -> dict[str, dict]:
    return {reveal(r.inputs)["name"]: reveal(r.inputs)["healthcheck"]
            for r in stack.of_type("docker:index/container:Container")}


def test_debian_version_defaults_to_13_and_each_stack_sets_it():
    assert _load(remove=("vpsDebianVersion",)).vps_debian_version == 13
    config, _, _ = engine_config("production", remove=["vpsDebianVersion"])
    assert config["jamjam:vpsDebianVersion"] == "13", "Pulumi.yaml's default"
    # Which release is the operator's to say (SPEC leaves it open); that each stack says it is
    # what matters, so a plan never guesses.
    for stack in ("production", "test"):
        assert stack_config(stack)["jamjam:vpsDebianVersion"] in DEBIAN_RELEASES
    assert _load({"vpsDebianVersion": "12"}).vps_debian_version == 12


def test_debian_13_sends_start_intervals_and_ships_the_release_in_the_bootstrap():
    stack = render("production", overrides={"vpsDebianVersion": 13})
    assert {h.get("startInterval") for h in _healthchecks(stack).values()} == {"1s"}
    for name in ("vps-bootstrap", "vps-first-contact"):
        script = stack.named(name).inputs["stdin"]
        assert "\nDEBIAN_VERSION=13\n" in script and "\nDOCKER_API_MIN=1.44\n" in script
        assert "\nDEBIAN_SETTING=jamjam:vpsDebianVersion\n" in script
        assert "@DEBIAN_VERSION@" not in script
    assert stack.outputs["vpsDebian"].startswith("Debian 13 (trixie), docker.io 26.1")


def test_debian_12_leaves_start_intervals_out_and_the_plan_says_what_that_costs():
    stack = render("production", overrides={"vpsDebianVersion": 12})
    checks = _healthchecks(stack)
    assert checks and all("startInterval" not in h for h in checks.values()), checks
    # SPEC's schedule stays whichever release runs.
    assert {(h["interval"], h["timeout"], h["retries"], h["startPeriod"])
            for h in checks.values()} == {("30s", "3s", 3, "5s")}
    script = stack.named("vps-bootstrap").inputs["stdin"]
    assert "\nDEBIAN_VERSION=12\n" in script and "\nDOCKER_API_MIN=''\n" in script
    assert "one healthcheck interval (~30 s)" in stack.outputs["vpsDebian"]


def test_changing_the_release_reruns_the_bootstrap_but_not_first_contact():
    """The release is in the script's text: a new value is a new stdin, which reruns the
    bootstrap (and replaces the containers, whose healthcheck changes); first contact ignores
    its stdin, so it never runs again on a machine that already has the user."""
    before = render("production", overrides={"vpsDebianVersion": 13})
    after = render("production", overrides={"vpsDebianVersion": 12})
    assert before.named("vps-bootstrap").inputs["stdin"] != after.named("vps-bootstrap").inputs["stdin"]
    assert "stdin" in before.named("vps-first-contact").options["ignoreChanges"]
    assert "healthcheck" in before.named("jamjam-echo").options["replaceOnChanges"]
