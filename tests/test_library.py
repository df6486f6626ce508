"""The component library on its own, through small programs that use what jamjam does not:
multi-route tunnels, volumes, post-deploy runs, generated secrets, several hosts, and the
checks that stop a bad spec before anything is registered."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from pathlib import Path
from typing import Callable

import pulumi
import pytest

from jamjam_infra.container import (ContainerSpec, Hardening, Healthcheck, Port, PostDeploy,
                                    Volume, docker_run_flags)
from jamjam_infra.host import (DEBIAN_RELEASES, Debian, Host, HostArgs, MovedFrom, SshArgs,
                               bootstrap_script)
from jamjam_infra.schema import ConfigError
from jamjam_infra.secrets import generated_secret
from jamjam_infra.tunnel import ExternalCheck, Route, Tunnel, TunnelArgs
from tools.render import (OfflineMocks, RecordingMonitor, RenderedStack, is_secret, render,
                          reveal)
from tests.program_helpers import run_program
from tests.ssh_helpers import fake_host_key

CONTAINER = "docker:index/container:Container"
ACCOUNT = "ac" * 16  # built, not written: no token-shaped literals in the repo
ZONE = "2e" * 16
HEALTH = Healthcheck(("true",))


RETAINED: set[str] = set()
"""Names of resources registered with retain_on_delete in the last render."""


ALIASES: dict[str, list[tuple[str, str]]] = {}
"""Resource name -> (old name, old parent URN) of each alias, in the last render."""


class _Monitor(RecordingMonitor):
    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        if request.retainOnDelete:
            RETAINED.add(request.name)
        ALIASES[request.name] = [(alias.spec.name, alias.spec.parentUrn)
                                 for alias in request.aliases]
        return super().RegisterResource(request)


class _LibraryMocks(OfflineMocks):
    def new_resource(self, args):
        ident, state = super().new_resource(args)
        if args.typ == "random:index/randomPassword:RandomPassword":
            digest = hashlib.sha256(f"{self.stack}:{args.name}".encode()).hexdigest()
            state["result"] = digest[: int(state.get("length", 32))]
        return ident, state


def render_program(program: Callable[[], None], stack: str = "test") -> RenderedStack:
    """Run ``program`` as a Pulumi program under the same mocks tools.render uses, through
    the SDK's documented test entry point (``pulumi.runtime.test``)."""
    mocks = _LibraryMocks(stack)
    RETAINED.clear()
    ALIASES.clear()
    monitor = run_program(program, project="library", stack=stack, mocks=mocks,
                          monitor=_Monitor(mocks))
    return RenderedStack(stack=stack, resources=tuple(monitor.registrations), outputs={})


def ssh_args(address: str = "203.0.113.30") -> SshArgs:
    """SSH arguments of a documentation-range host, for a library-only program."""
    return SshArgs(host=address, port=22, user="ops", initial_user="root",
                   private_key=pulumi.Output.secret("-----EXAMPLE KEY-----"),
                   host_key=fake_host_key())


def app_spec(**changes) -> ContainerSpec:
    """A web app container spec with a healthcheck; ``changes`` override its fields."""
    fields = dict(role="app", name="web-app", image="ghcr.io/example/app:1.0", host="vps",
                  healthcheck=HEALTH, aliases=("app",))
    return ContainerSpec(**{**fields, **changes})


def _db(**changes) -> ContainerSpec:
    fields = dict(role="db", name="web-db", image="postgres:16.4", host="vps",
                  healthcheck=Healthcheck(("pg_isready",)), aliases=("db",),
                  volumes=(Volume("web-db-data", "/var/lib/postgresql/data"),),
                  backup_job="web-db-daily",
                  hardening=Hardening(cap_add=("CHOWN", "SETUID", "SETGID", "FOWNER",
                                               "DAC_OVERRIDE")))
    return ContainerSpec(**{**fields, **changes})


# --- a multi-container system: secrets, volumes, post-deploy --------------------------------

def _django_like() -> RenderedStack:
    def program() -> None:
        password = generated_secret("db-password")
        django_key = generated_secret("django-key", length=50)
        db = _db(secret_env={"POSTGRES_PASSWORD": password}, env={"POSTGRES_USER": "app"})
        app = app_spec(
            env={"ENV": "production"},
            secret_env={
                "DATABASE_URL": password.apply(lambda p: f"postgres://app:{p}@db:5432/app"),
                "DJANGO_SECRET_KEY": django_key},
            post_deploy=PostDeploy((("python", "manage.py", "migrate", "--noinput"),
                                    ("python", "manage.py", "collectstatic", "--noinput"))),
            depends_on=("db",))
        Host("vps", HostArgs(ssh=ssh_args(), stack="test", network="web", containers=[db, app]))
    return render_program(program)


def test_generated_secret_is_shared_and_stays_secret():
    stack = _django_like()
    (password,) = [r for r in stack.of_type("random:index/randomPassword:RandomPassword")
                   if r.name == "db-password"]
    assert password.inputs["special"] is False and password.inputs["length"] == 32.0
    containers = {c.inputs["name"]: c.inputs for c in stack.of_type(CONTAINER)}
    db_env, app_env = reveal(containers["web-db"]["envs"]), reveal(containers["web-app"]["envs"])
    db_password = next(e.split("=", 1)[1] for e in db_env if e.startswith("POSTGRES_PASSWORD="))
    assert f"DATABASE_URL=postgres://app:{db_password}@db:5432/app" in app_env
    for inputs in containers.values():
        # One secret element makes the engine store the whole list encrypted.
        assert is_secret(inputs["envs"])


def test_volumes_are_their_own_resources_kept_on_delete():
    stack = _django_like()
    (volume,) = stack.of_type("docker:index/volume:Volume")
    assert volume.inputs["name"] == "web-db-data"
    db = stack.named("web-db")
    assert db.inputs["volumes"] == [{"volumeName": "web-db-data",
                                     "containerPath": "/var/lib/postgresql/data"}]
    labels = {label["label"]: label["value"] for label in db.inputs["labels"]}
    assert labels["jamjam.backup"] == "web-db-daily"
    assert RETAINED == {"web-db-volume-web-db-data"}, "deleting the resource leaves the data"


def test_post_deploy_runs_the_new_image_before_the_container_with_env_on_stdin():
    stack = _django_like()
    run = stack.named("web-app-post-deploy")
    image = stack.named("web-app-image")
    assert run.inputs["triggers"] == [_image_id(stack, "web-app-image")]
    assert image.urn in run.options["dependencies"]
    assert run.inputs["logging"] == "none", "secrets flow through it"
    assert is_secret(run.inputs["stdin"])
    env_file = reveal(run.inputs["stdin"])
    assert "ENV=production\n" in env_file and "DJANGO_SECRET_KEY=" in env_file
    create = run.inputs["create"]
    script = shlex.split(create)[2]
    assert shlex.split(create)[:2] == ["bash", "-c"]
    lines = script.splitlines()
    assert lines[0] == "set -eu"
    assert "mktemp" in lines[1] and "rm -f" in lines[2]
    assert lines[3] == 'sudo -n tee "$f" >/dev/null'
    migrate, collect = lines[4:]
    for line, last in ((migrate, "migrate"), (collect, "collectstatic")):
        argv = shlex.split(line)
        assert argv[:4] == ["sudo", "-n", "docker", "run"] and "--rm" in argv
        assert argv[argv.index("--network") + 1] == "web"
        assert argv[argv.index("--env-file") + 1] == "$f" and ' --env-file "$f" ' in line
        # The reference the RemoteImage pulled, never pulled again by the run itself: the
        # same image, and a command known at preview (the id is in the trigger).
        assert image.inputs["name"] in argv and argv[-2] == last
        assert argv[argv.index("--pull") + 1] == "never"
        assert "--cap-drop" in argv and "--pids-limit" in argv
    assert _image_id(stack, "web-app-image") not in create
    # Nothing secret on the command line.
    assert "DJANGO_SECRET_KEY" not in create and reveal(run.inputs["stdin"]).split(
        "DJANGO_SECRET_KEY=")[1].split("\n")[0] not in create
    app = stack.named("web-app")
    assert run.urn in app.options["dependencies"]
    assert stack.named("web-db").urn in run.options["dependencies"], "the db is up first"


FAKE_BIN = Path(__file__).parent / "fixtures/post-deploy-bin"


def _run_post_deploy(tmp_path: Path, fail_on: str = "") -> tuple[subprocess.CompletedProcess,
                                                                   list[str], str, str]:
    """The rendered post-deploy command run for real by bash, with the docker CLI and sudo
    replaced by tests/fixtures/post-deploy-bin (no engine here); the mktemp, the env file
    written from stdin, the `set -e` chain and the cleanup are the real thing."""
    if os.geteuid() != 0:
        pytest.skip("the env file goes to /run, which needs root (make test runs as root)")
    run = _django_like().named("web-app-post-deploy")
    log, env_copy = tmp_path / "docker.log", tmp_path / "env"
    log.touch()
    env_copy.touch()
    env_file = reveal(run.inputs["stdin"])
    result = subprocess.run(
        run.inputs["create"], shell=True, input=env_file, text=True, capture_output=True,
        timeout=30, env={**os.environ, "PATH": f"{FAKE_BIN}:{os.environ['PATH']}",
                         "FAKE_DOCKER_LOG": str(log), "FAKE_DOCKER_ENV": str(env_copy),
                         "FAKE_DOCKER_FAIL_ON": fail_on})
    calls = log.read_text().splitlines()
    # The files this run's docker calls were given, not a listing of /run: another test (or
    # `make check`'s other workers) may hold one of its own there meanwhile.
    used = {argv[i + 1] for argv in (line.split() for line in calls)
            for i in range(len(argv) - 1) if argv[i] == "--env-file"}
    assert used and all(path.startswith("/run/jamjam-post-deploy.") for path in used), calls
    assert not any(Path(path).exists() for path in used), "the env file is removed"
    return result, calls, env_copy.read_text(), env_file


def test_post_deploy_command_runs_each_step_with_the_env_from_a_0600_file(tmp_path):
    result, calls, seen_env, env_file = _run_post_deploy(tmp_path)
    assert result.returncode == 0, result.stderr
    runs = [line for line in calls if line.startswith("run ")]
    assert [r.split()[-2] for r in runs] == ["migrate", "collectstatic"]
    assert calls.count("600") == 2, calls
    assert seen_env == env_file * 2


def test_a_failing_migration_fails_the_command_and_stops_there(tmp_path):
    result, calls, _, _ = _run_post_deploy(tmp_path, fail_on="migrate")
    assert result.returncode == 3
    assert not any("collectstatic" in line for line in calls)


def _image_id(stack: RenderedStack, name: str) -> str:
    return "sha256:" + hashlib.sha256(stack.named(name).inputs["name"].encode()).hexdigest()


def test_one_off_runs_get_the_serving_containers_hardening():
    # Limits a stack overrode, not the library's defaults: the run follows the spec.
    spec = _db().with_overrides(memory_mb=384, pids_limit=96)
    flags = docker_run_flags(spec, "web")
    assert flags[:3] == ["--rm", "--network", "web"]
    for pair in (["--cap-drop", "ALL"], ["--security-opt", "no-new-privileges=true"],
                 ["--pids-limit", "96"], ["--memory", "384m"], ["--cap-add", "CHOWN"],
                 ["--volume", "web-db-data:/var/lib/postgresql/data"]):
        assert any(flags[i:i + 2] == pair for i in range(len(flags))), pair


# --- hosts and their firewalls ------------------------------------------------------------

def test_each_host_opens_only_ssh_and_what_its_own_containers_publish():
    def program() -> None:
        Host("edge", HostArgs(ssh=ssh_args("203.0.113.31"), stack="test", network="edge",
                              containers=[app_spec(host="edge", ports=(Port(5000, "udp"),
                                                                   Port(7000)))]))
        Host("back", HostArgs(ssh=ssh_args("203.0.113.32"), stack="test", network="back",
                              containers=[_db(host="back")]))
    stack = render_program(program)
    assert stack.named("edge-firewall").inputs["create"].endswith(
        "apply --ssh-port 22 --allow 5000/udp --allow 7000/tcp")
    assert stack.named("back-firewall").inputs["create"].endswith("apply --ssh-port 22")
    assert stack.named("edge-docker").inputs["host"] == "ssh://ops@203.0.113.31:22"
    assert stack.named("web-app").provider.startswith(stack.named("edge-docker").urn)
    assert stack.named("web-db").provider.startswith(stack.named("back-docker").urn)


def test_a_moved_host_keeps_the_old_resources_by_alias():
    """jamjam's Docker resources were children of Services "jamjam"; a stack deployed then
    must move them in state, not replace them (a replaced network takes every container)."""
    old = "urn:pulumi:test::library::jamjam:index:Services::jamjam"
    render_program(lambda: Host("vps", HostArgs(
        ssh=ssh_args(), stack="test", network="n", containers=[app_spec()],
        moved_from=MovedFrom(type="jamjam:index:Services", name="jamjam"))))
    assert ALIASES["vps-docker"] == [("jamjam-docker", old)]
    assert ALIASES["vps-network"] == [("jamjam-network", old)]
    assert ALIASES["web-app"] == [("", old)] and ALIASES["web-app-image"] == [("", old)]
    render_program(lambda: Host("vps", HostArgs(
        ssh=ssh_args(), stack="test", network="n", containers=[app_spec()])))
    assert ALIASES["vps-docker"] == [] and ALIASES["web-app"] == []


def test_a_host_refuses_containers_placed_elsewhere():
    with pytest.raises(ValueError, match="names host 'back' but was given to host 'vps'"):
        render_program(lambda: Host("vps", HostArgs(
            ssh=ssh_args(), stack="test", network="n", containers=[app_spec(host="back")])))


def test_a_spec_cannot_claim_the_librarys_labels():
    with pytest.raises(ValueError, match="label 'jamjam.stack' is set by the library"):
        render_program(lambda: Host("vps", HostArgs(
            ssh=ssh_args(), stack="test", network="n",
            containers=[app_spec(labels={"jamjam.stack": "production"})])))
    stack = render_program(lambda: Host("vps", HostArgs(
        ssh=ssh_args(), stack="test", network="n", containers=[app_spec(labels={"team": "web"})])))
    labels = {x["label"]: x["value"] for x in stack.named("web-app").inputs["labels"]}
    assert labels == {"jamjam.stack": "test", "jamjam.role": "app", "team": "web"}


def test_two_containers_cannot_publish_the_same_port_on_one_host():
    with pytest.raises(ValueError, match="publishes 5000/udp, which 'web-app' already publishes"):
        render_program(lambda: Host("vps", HostArgs(
            ssh=ssh_args(), stack="test", network="n",
            containers=[app_spec(ports=(Port(5000, "udp"),)),
                        app_spec(role="app2", name="web-app2", ports=(Port(5000, "udp"),))])))


def test_dependencies_must_be_listed_first():
    with pytest.raises(ValueError, match="depends on 'db', which is not listed before it"):
        render_program(lambda: Host("vps", HostArgs(
            ssh=ssh_args(), stack="test", network="n",
            containers=[app_spec(depends_on=("db",)), _db()])))


# --- specs refuse what the policies forbid ------------------------------------------------

@pytest.mark.parametrize("port", [5432, 3306, 6379, 27017])
def test_database_ports_cannot_be_published(port):
    with pytest.raises(ValueError, match=f"port {port} is a database/cache port"):
        app_spec(ports=(Port(port),))


@pytest.mark.parametrize("name", ["DB_PASSWORD", "SECRET_KEY_BASE", "API_TOKEN",
                                  "AWS_ACCESS_KEY_ID"])
def test_secret_looking_env_must_be_secret_env(name):
    with pytest.raises(ValueError, match=f"env {name} looks like a secret"):
        app_spec(env={name: "x"})
    assert app_spec(secret_env={name: "x"}).secret_env[name] == "x"


def test_containers_restart_by_themselves_and_check_their_health():
    with pytest.raises(ValueError, match="restart must be 'always' or 'unless-stopped'"):
        app_spec(restart="no")
    with pytest.raises(ValueError, match="healthcheck needs a command"):
        app_spec(healthcheck=Healthcheck(()))
    with pytest.raises(ValueError, match="healthcheck needs a command"):
        app_spec(healthcheck=Healthcheck(("true",), retries=0))


def test_a_database_with_data_names_its_backup():
    with pytest.raises(ValueError, match="names no backup job"):
        _db(backup_job=None)
    assert _db(volumes=(), backup_job=None).backup_job is None


def test_a_tunnel_origin_is_never_a_published_port():
    with pytest.raises(ValueError, match="port 8000 is published"):
        app_spec(ports=(Port(8000),)).origin(8000)
    assert app_spec().origin(8000) == "http://app:8000"


def test_wait_timeout_follows_the_healthcheck():
    assert Healthcheck(("x",)).wait_timeout_s() == 5 + 30 + 3 * 33 + 15
    slow = Healthcheck(("x",), interval_s=10, timeout_s=5, retries=5, start_period_s=60)
    assert slow.wait_timeout_s() == 60 + 10 + 5 * 15 + 15


# --- tunnels ------------------------------------------------------------------------------

def test_routes_with_paths_come_before_their_hostname_and_404_is_last():
    def program() -> None:
        Tunnel("web", TunnelArgs(account_id=ACCOUNT, zone_id=ZONE, tunnel_name="web-test", routes=[
            Route("site", "example.koeda.me", "http://front:3000"),
            Route("api", "example.koeda.me", "http://app:8000", path="^/api/",
                  check=ExternalCheck(path="/api/health", expected_codes=("2xx",))),
            Route("admin", "admin.koeda.me", "http://app:8000"),
        ]))
    stack = render_program(program)
    ingresses = stack.named("web-config").inputs["config"]["ingresses"]
    assert ingresses == [
        {"hostname": "example.koeda.me", "path": "^/api/", "service": "http://app:8000"},
        {"hostname": "example.koeda.me", "service": "http://front:3000"},
        {"hostname": "admin.koeda.me", "service": "http://app:8000"},
        {"service": "http_status:404"},
    ]
    # The first hostname's record keeps the name single-hostname tunnels gave it.
    assert ("web-dns", "") in ALIASES["web-dns-example.koeda.me"]
    assert ("web-dns", "") not in ALIASES["web-dns-admin.koeda.me"]
    records = stack.of_type("cloudflare:index/dnsRecord:DnsRecord")
    assert sorted(r.inputs["name"] for r in records) == ["admin.koeda.me", "example.koeda.me"]
    assert all(r.inputs["proxied"] is True and r.inputs["ttl"] == 1.0 for r in records)
    (check,) = stack.of_type("cloudflare:index/healthcheck:Healthcheck")
    assert check.inputs["name"] == "web-test-api"
    assert check.inputs["httpConfig"]["path"] == "/api/health"
    assert check.inputs["httpConfig"]["expectedCodes"] == ["2xx"]


def test_duplicate_routes_are_refused():
    with pytest.raises(ValueError, match="same hostname and path"):
        render_program(lambda: Tunnel("web", TunnelArgs(
            account_id=ACCOUNT, zone_id=ZONE, tunnel_name="t", routes=[
                Route("a", "x.koeda.me", "http://a:1"), Route("b", "x.koeda.me", "http://b:1")])))


def test_the_library_never_reads_a_projects_config():
    """Components take Args: none imports jamjam's settings or reads stack config itself."""
    library = Path(__file__).resolve().parent.parent / "components"
    for module in sorted(library.glob("*.py")):
        source = module.read_text()
        assert "import settings" not in source and "from settings" not in source, module.name
        if "(pulumi.ComponentResource)" in source:
            # A config-reading helper for projects may live in the package; components don't.
            assert "pulumi.Config(" not in source, module.name


def test_tunnel_and_token_names_start_with_the_project_name_unless_a_site_keeps_its_own():
    examples = Path(__file__).resolve().parent.parent / "examples"
    for project, owner in (("thinkring", "thinkring"), ("r-stream", "rstream")):
        stack = render("production", project_dir=examples / project)
        kind = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
        (tunnel,) = stack.of_type(kind)
        assert reveal(tunnel.inputs)["name"] == f"{owner}-production", project
        tokens = [reveal(r.inputs)["name"] for r in stack.resources
                  if r.type == "cloudflare:index/apiToken:ApiToken"]
        assert tokens and all(t.startswith(f"{owner}-production-") for t in tokens), tokens


# --- the host's Debian release and healthcheck start intervals -----------------------------

def _on(debian: Debian | None = None) -> RenderedStack:
    def program() -> None:
        args = dict(ssh=ssh_args(), stack="test", network="web", containers=[_db(), app_spec()])
        Host("vps", HostArgs(**args, **({"debian": debian} if debian else {})))
    return render_program(program)


def test_start_interval_is_sent_only_to_an_engine_that_takes_it():
    """Docker 25 (API 1.44) added the start interval; the provider's Go client refuses a
    create that sets one on an older engine, so Debian 12's docker.io 20.10 must not get it."""
    assert [v for v, r in DEBIAN_RELEASES.items() if r.start_interval] == [13]
    for debian, expected in ((None, "1s"), (Debian(13), "1s"), (Debian(12), None)):
        stack = _on(debian)
        for name in ("web-app", "web-db"):
            health = stack.named(name).inputs["healthcheck"]
            assert health.get("startInterval") == expected, (debian, health)
            assert (health["interval"], health["startPeriod"]) == ("30s", "5s")
            assert "healthcheck" in stack.named(name).options["replaceOnChanges"]


def test_the_wait_bound_holds_with_or_without_a_start_interval():
    """wait_timeout_s bounds Docker's own schedule: with a start interval the first probes come
    sooner, never later, so the bound is the same on both releases."""
    check = Healthcheck(("x",), start_interval_s=30)
    assert check.wait_timeout_s() == Healthcheck(("x",)).wait_timeout_s()
    for debian in (Debian(12), Debian(13)):
        assert _on(debian).named("web-app").inputs["waitTimeout"] == HEALTH.wait_timeout_s()
    with pytest.raises(ValueError, match="start_interval_s must be from 1 to interval_s"):
        app_spec(healthcheck=Healthcheck(("true",), start_interval_s=0))
    with pytest.raises(ValueError, match="start_interval_s must be from 1 to interval_s"):
        app_spec(healthcheck=Healthcheck(("true",), interval_s=10, start_interval_s=11))


def test_an_unsupported_release_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match=r"^api:vpsDebianVersion is 11, .* Debian 12 or 13; fix: "
                                         r"pulumi config set api:vpsDebianVersion 13"):
        _on(Debian(11, "api:vpsDebianVersion"))


def test_the_bootstrap_ships_with_its_release_filled_in():
    for version, api in ((12, "''"), (13, "1.44")):
        text = bootstrap_script(Debian(version, "api:vpsDebianVersion"))
        assert f"\nDEBIAN_VERSION={version}\nDOCKER_API_MIN={api}\n" \
               "DEBIAN_SETTING=api:vpsDebianVersion\n" in text
        assert "@" + "DEBIAN" not in text
    stack = _on(Debian(12))
    assert stack.named("vps-bootstrap").inputs["stdin"] == bootstrap_script(Debian(12))


@pytest.mark.parametrize("value,version", [(None, 13), (12, 12), ("13", 13)])
def test_an_example_project_reads_its_own_debian_setting(value, version):
    examples = Path(__file__).resolve().parent.parent / "examples"
    stack = render("production", project_dir=examples / "thinkring",
                   overrides={"vpsDebianVersion": value} if value is not None else None,
                   remove=["vpsDebianVersion"] if value is None else ())
    script = next(r for r in stack.resources if r.name.endswith("-bootstrap")).inputs["stdin"]
    assert f"\nDEBIAN_VERSION={version}\n" in script
    assert "\nDEBIAN_SETTING=thinkring:vpsDebianVersion\n" in script


def test_an_example_project_refuses_a_bad_debian_setting_in_one_line():
    examples = Path(__file__).resolve().parent.parent / "examples"
    with pytest.raises(ConfigError) as caught:
        render("production", project_dir=examples / "thinkring",
               overrides={"vpsDebianVersion": "11"})
    assert caught.value.lines == (
        "thinkring:vpsDebianVersion: must be the VPS's Debian release, 12 (bookworm) or "
        "13 (trixie) (upgrade an older host first), got '11'; fix: pulumi config set "
        "--stack production thinkring:vpsDebianVersion 13",)
