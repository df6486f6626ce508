"""The four example projects (examples/*), rendered offline like `make plan-examples`, against
the facts SYSTEMS.md gives for each: containers, their environment, secrets kept secret,
routes, nothing published, backups with their schedules and retention, health checks, log
rotation; each passes the policy pack with its own policy-config.json.

What SYSTEMS.md leaves open (image pins, extra containers, the hour of a daily job it gives no
time for) is asserted against the stack's config or by its shape, never as today's value."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.config_helpers import configured
from tests.cron_helpers import cron_entry_fields, cron_env
from tools.cli import project_policy_config
from tools.policy_check import check
from tools.render import RenderedStack, Resource, is_secret, render, reveal

ROOT = Path(__file__).resolve().parent.parent
# Every project under examples/, found by its Pulumi.yaml: a new one gets every generic test.
EXAMPLES = {p.parent.name: p.parent for p in sorted((ROOT / "examples").glob("*/Pulumi.yaml"))}
SYSTEMS = ("workspace-backend", "r-stream", "shiojiri-rainbow-seeker", "thinkring")
"""SYSTEMS.md's four services, each with its own test of what its document asks for."""
CONTAINER = "docker:index/container:Container"
COMMAND = "command:remote:Command"
DAY = 86_400


@pytest.fixture(scope="module")
def stacks() -> dict[str, RenderedStack]:
    return {name: render("production", project_dir=path) for name, path in EXAMPLES.items()}


# --- reading the rendered plan ------------------------------------------------------------

def containers(stack: RenderedStack) -> dict[str, Resource]:
    return {c.inputs["name"]: c for c in stack.of_type(CONTAINER)}


def env(container: Resource) -> dict[str, str]:
    return dict(str(e).split("=", 1) for e in reveal(container.inputs.get("envs") or []))


def image(stack: RenderedStack, container: Resource) -> str:
    urns = {r.urn: r for r in stack.resources}
    (name,) = [urns[u].inputs["name"] for u in container.options["dependencies"]
               if urns[u].type == "docker:index/remoteImage:RemoteImage"]
    return name


def cron(stack: RenderedStack, job: str) -> tuple[str, dict[str, str]]:
    content = stack.host_files()[f"/etc/cron.d/jamjam-{job}"]
    return " ".join(cron_entry_fields(content)[:5]), cron_env(content)


def ingress(stack: RenderedStack) -> list[dict]:
    (config,) = stack.of_type(
        "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig")
    return config.inputs["config"]["ingresses"]


def checks(stack: RenderedStack) -> dict[str, dict]:
    return {h.inputs["address"] + h.inputs["httpConfig"]["path"]: h.inputs
            for h in stack.of_type("cloudflare:index/healthcheck:Healthcheck")}


def expiry(stack: RenderedStack, bucket: str) -> dict[str, int]:
    rules = {}
    for lifecycle in stack.of_type("cloudflare:index/r2BucketLifecycle:R2BucketLifecycle"):
        if lifecycle.inputs["bucketName"] == bucket:
            for rule in lifecycle.inputs["rules"]:
                if "deleteObjectsTransition" in rule:
                    rules[rule["conditions"]["prefix"]] = int(
                        rule["deleteObjectsTransition"]["condition"]["maxAge"] // DAY)
    return rules


def is_daily(schedule: str) -> bool:
    """Once a day at one fixed time."""
    minute, hour, *rest = schedule.split()
    return minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"]


def hours(field: str) -> list[int]:
    """The hours a cron hour field (``*/6``, ``1,7,13,19`` or one number) runs at."""
    if field.startswith("*/"):
        return list(range(0, 24, int(field[2:])))
    return sorted(int(hour) for hour in field.split(","))


def generated(stack: RenderedStack) -> dict[str, str]:
    """RandomPassword name -> the stand-in value the offline render gave it."""
    return {what.rsplit(" ", 1)[1]: value for value, what in stack.stand_ins.items()
            if what.startswith("random password ")}


def plaintext(value: Any, needle: str) -> bool:
    """Whether ``needle`` appears anywhere in ``value`` outside a secret."""
    if is_secret(value):
        return False
    if isinstance(value, dict):
        return any(plaintext(v, needle) for v in value.values())
    if isinstance(value, list):
        return any(plaintext(v, needle) for v in value)
    return isinstance(value, str) and needle in value


# --- every example ------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLES)
def test_each_is_a_pulumi_project_on_the_installed_library(name):
    project = EXAMPLES[name]
    document = yaml.safe_load((project / "Pulumi.yaml").read_text())
    assert document["name"] == name
    assert document["runtime"]["name"] == "python"
    venv = (project / document["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == (ROOT / ".venv").resolve()
    assert (project / "__main__.py").exists() and (project / "Pulumi.production.yaml").exists()
    for source in project.glob("*.py"):
        text = source.read_text()
        assert "sys.path" not in text and "PYTHONPATH" not in text, f"{source.name}: path hack"
    # The library comes from the installed distribution (requirements.txt: -e .).
    from importlib.metadata import distribution
    assert distribution("jamjam-infra").metadata["Name"] == "jamjam-infra"
    import jamjam_infra
    assert Path(jamjam_infra.__file__).parent == ROOT / "components"


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_passes_the_policy_pack_with_its_config(stacks, name):
    violations = check("production", stacks[name].resources,
                       project_policy_config(EXAMPLES[name]))
    mandatory = [v.message for v in violations if v.level == "mandatory"]
    assert mandatory == []
    # Read-only root and a non-root user stay advisory: these images' contents are not known
    # here, so the library leaves both switches off for them (docs/hardening.md).
    assert {v.policy for v in violations} <= {"container-read-only-rootfs",
                                              "container-non-root-user"}


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_runs_exactly_the_images_its_stack_pins(stacks, name):
    """Every pinned image is pulled and run, and nothing runs that the stack does not pin:
    a changed pin or another container needs no test edit."""
    stack = stacks[name]
    pinned = configured("production", "images", project_dir=EXAMPLES[name])
    pulled = {i.inputs["name"] for i in stack.of_type("docker:index/remoteImage:RemoteImage")}
    assert pulled == set(pinned.values())
    assert {image(stack, c) for c in containers(stack).values()} == set(pinned.values())


@pytest.mark.parametrize("name", EXAMPLES)
def test_nothing_is_published_and_the_firewall_opens_only_ssh(stacks, name):
    for container in containers(stacks[name]).values():
        assert not container.inputs.get("ports"), container.inputs["name"]
    (firewall,) = [c for c in stacks[name].of_type(COMMAND)
                   if "jamjam-firewall apply" in str(c.inputs.get("create"))]
    assert "--allow" not in firewall.inputs["create"]
    assert "--ssh-port 22" in firewall.inputs["create"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_container_restarts_is_health_checked_and_rotates_logs(stacks, name):
    for container in containers(stacks[name]).values():
        inputs = container.inputs
        assert inputs["restart"] == "always"
        assert inputs["healthcheck"]["tests"][0] == "CMD" and len(inputs["healthcheck"]["tests"]) > 1
        assert inputs["logDriver"] == "json-file"
        assert inputs["wait"] is True
    # The previous image stays on the host: rollback is one config change.
    for pulled in stacks[name].of_type("docker:index/remoteImage:RemoteImage"):
        assert pulled.inputs["keepLocally"] is True


@pytest.mark.parametrize("name", EXAMPLES)
def test_generated_and_operator_secrets_are_never_in_plaintext(stacks, name):
    stack = stacks[name]
    secrets = list(generated(stack).values())
    secrets += [value for value, what in stack.stand_ins.items()
                if what in ("tunnel connector token",) or what.startswith("value of API token")]
    assert generated(stack), "each example generates its database password"
    for resource in stack.resources:
        for value in secrets:
            assert not plaintext(resource.inputs, value), f"{resource.name} holds a secret in plaintext"
    for container in containers(stack).values():
        if any(re.search(r"PASSWORD|SECRET|TOKEN|KEY|DATABASE_URL", e)
               for e in env(container)):
            assert is_secret(container.inputs["envs"]), container.inputs["name"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_database_is_backed_up_and_drilled(stacks, name):
    stack = stacks[name]
    (db,) = [c for c in containers(stack).values()
             if re.search(r"(^|/)(postgres|postgis)", image(stack, c))]
    labels = {label["label"]: label["value"] for label in db.inputs["labels"]}
    backup = labels["jamjam.backup"]
    assert db.inputs["volumes"][0]["containerPath"] == "/var/lib/postgresql/data"
    jobs = [path for path, content in stack.host_files().items()
            if path.startswith("/etc/cron.d/") and backup in str(content)]
    assert f"/etc/cron.d/jamjam-{backup}-restore-drill" in jobs
    _, drill = cron(stack, f"{backup}-restore-drill")
    assert drill["JAMJAM_DB_CONTAINER"] == db.inputs["name"]
    assert drill["JAMJAM_R2_SOURCE"].startswith("r2:") and backup in drill["JAMJAM_R2_SOURCE"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_backups_and_syncs_do_not_wait_for_the_image_scanner(stacks, name):
    """They need the alert script, not Trivy: an outage of Aqua's apt repository during an
    `up` must not leave a database without its backup jobs."""
    stack = stacks[name]
    by_urn = {r.urn: r for r in stack.resources}

    def needs(resource, seen=None):
        seen = set() if seen is None else seen
        for urn in resource.options.get("dependencies", []):
            if urn not in seen and urn in by_urn:
                seen.add(urn)
                needs(by_urn[urn], seen)
        return {by_urn[u].name for u in seen}

    jobs = [r for r in stack.of_type("command:remote:Command")
            if r.name.startswith(("db-backup", "media", "archives", "recordings", "sync-"))
            or "backup" in r.name]
    assert jobs
    for job in jobs:
        found = needs(job)
        assert not any("trivy" in n for n in found), f"{job.name} waits for {sorted(found)}"
        if job.name.endswith("-script"):
            assert "ops-alert-script" in found, f"{job.name} does not wait for the alert script"


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_tunnel_ends_with_a_404_and_every_hostname_is_proxied(stacks, name):
    stack = stacks[name]
    rules = ingress(stack)
    assert rules[-1] == {"service": "http_status:404"}
    hostnames = {rule["hostname"] for rule in rules[:-1]}
    records = {r.inputs["name"]: r.inputs for r in stack.of_type("cloudflare:index/dnsRecord:DnsRecord")}
    assert set(records) == hostnames
    assert all(record["proxied"] is True for record in records.values())


def test_bad_config_is_one_line_per_key_with_a_fix_and_nothing_registered():
    with pytest.raises(Exception) as raised:
        render("production", project_dir=EXAMPLES["thinkring"], use_examples=False,
               overrides={"images": {"frontend": "ghcr.io/thinkring/frontend:latest",
                                     "backend": "ghcr.io/thinkring/backend:1.4.2",
                                     "db": "postgres:15.8", "cloudflared": "cloudflare/cloudflared:1"},
                          "hostname": "thinkring.example.org"})
    lines = raised.value.lines
    assert not raised.value.registered
    assert any(line.startswith("thinkring:images.frontend: must not use the moving tag 'latest'")
               for line in lines)
    assert any(line.startswith("thinkring:hostname: must be inside the zone 'example.com'")
               for line in lines)
    for key in ("vpsAddress", "cloudflareAccountId", "cloudflareZoneId", "sshPrivateKey"):
        assert any(line.startswith(f"thinkring:{key}: is not set; fix: pulumi config set "
                                   "--stack production") for line in lines), key
    assert any("pulumi config set --stack production --secret thinkring:sshPrivateKey" in line
               for line in lines)


def test_a_bad_bucket_name_is_one_line_with_a_fix():
    with pytest.raises(Exception) as raised:
        render("production", project_dir=EXAMPLES["shiojiri-rainbow-seeker"],
               overrides={"imageBucket": "Images_Bucket"})
    assert not raised.value.registered
    assert raised.value.lines == (
        "shiojiri-rainbow-seeker:imageBucket: is not a valid R2 bucket name, got "
        "'Images_Bucket'; fix: pulumi config set --stack production "
        "shiojiri-rainbow-seeker:imageBucket shiojiri-rainbow-images",)


def test_make_plan_examples_says_what_each_declares():
    result = subprocess.run([sys.executable, "-m", "tools.plan_examples"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in EXAMPLES:
        assert f"Project {name} (examples/{name}), stack production:" in result.stdout
    assert "Policies, mandatory" not in result.stdout
    assert "https://thinkring.example.com path ^/api/ -> http://backend:8000" in result.stdout
    assert "firewall opens 22/tcp (ssh), nothing else" in result.stdout
    # What runs before the new image serves, as the operator would type it.
    assert "before shiojiri-api: ./bin/rails db:migrate\n" in result.stdout
    assert ("before thinkring-backend: python manage.py migrate --noinput; "
            "python manage.py collectstatic --noinput\n") in result.stdout
    assert len(re.findall(r"OS security updates \(unattended-upgrades\): \*-\*-\* \d\d:\d\d; "
                          r"reboot by itself: no", result.stdout)) == len(EXAMPLES)


# --- workspace-backend ----------------------------------------------------------------------

def test_every_system_of_systems_md_is_an_example():
    assert set(SYSTEMS) <= set(EXAMPLES)


def test_workspace_backend(stacks):
    stack = stacks["workspace-backend"]
    found = containers(stack)
    assert {"work-tracker", "twitch-bot", "workspace-db", "workspace-cloudflared"} <= set(found)
    db, tracker, bot = env(found["workspace-db"]), env(found["work-tracker"]), env(found["twitch-bot"])
    assert db["POSTGRES_DB"] == "workspace" and db["POSTGRES_USER"] == "workspace"
    assert tracker["ENV"] == "production" and tracker["PORT"] == "8000"
    assert tracker["DATABASE_URL"] == f"postgres://workspace:{db['POSTGRES_PASSWORD']}@db:5432/workspace"
    assert bot["TRACKER_URL"] == "http://work-tracker:8000"
    assert bot["TWITCH_CLIENT_ID"] and bot["TWITCH_CLIENT_SECRET"]
    assert is_secret(found["twitch-bot"].inputs["envs"])
    assert ingress(stack)[0] == {"hostname": "work-tracker.example.com",
                                 "service": "http://work-tracker:8000"}
    check = checks(stack)["work-tracker.example.com/health"]
    assert check["interval"] == 300 and check["consecutiveFails"] == 2
    for container in found.values():
        assert container.inputs["logOpts"] == {"max-size": "10m", "max-file": "3"}
    schedule, variables = cron(stack, "workspace-db-backup-daily")
    assert schedule == "0 3 * * *" and variables["JAMJAM_KEEP_DAYS"] == "7"
    drill, _ = cron(stack, "workspace-db-backup-restore-drill")
    day, month, weekday = drill.split()[2:]
    assert 1 <= int(day) <= 28 and (month, weekday) == ("*", "*"), "once a month, every month"
    _, alerts = cron(stack, "resource-alert")
    assert alerts["JAMJAM_DISK_ALERT_PERCENT"] == "79", "at or above 80 %"
    assert alerts["JAMJAM_MEM_ALERT_PERCENT"] == "89", "at or above 90 %"
    bucket = configured("production", "bucket", project_dir=EXAMPLES["workspace-backend"])
    assert expiry(stack, bucket)["logs/"] >= 7


# --- R-Stream -------------------------------------------------------------------------------

def test_r_stream(stacks):
    stack = stacks["r-stream"]
    found = containers(stack)
    assert {"rstream-server", "rstream-db", "rstream-redis", "rstream-cloudflared"} <= set(found)
    major = lambda ref: int(re.search(r":(\d+)", ref).group(1))  # noqa: E731
    assert major(image(stack, found["rstream-db"])) >= 14
    assert major(image(stack, found["rstream-redis"])) >= 6
    server = env(found["rstream-server"])
    assert server["REDIS_URL"] == "redis://redis:6379"
    assert server["DATABASE_URL"].startswith("postgres://rstream:") and is_secret(
        found["rstream-server"].inputs["envs"])
    assert not found["rstream-redis"].inputs.get("volumes"), "a cache: nothing to back up"
    assert ingress(stack)[0]["service"] == "http://server:3000"
    schedule, _ = cron(stack, "rstream-db-backup-daily")
    assert schedule.split()[2:] == ["*", "*", "*"], "daily"
    for folder in ("archives", "recordings"):
        _, sync = cron(stack, f"sync-{folder}")
        assert sync["JAMJAM_R2_DEST"] == f"r2:rstream-backups/{folder}"
        assert sync["JAMJAM_SYNC_SOURCE"] == f"/var/lib/docker/volumes/rstream-{folder}/_data"
    rules = expiry(stack, "rstream-backups")
    assert (rules["logs/access/"], rules["logs/error/"], rules["logs/security/"]) == (90, 180, 365)
    for kind, days in (("access", 90), ("error", 180), ("security", 365)):
        _, logs = cron(stack, f"sync-{kind}-logs")
        assert logs["JAMJAM_SYNC_MODE"] == "copy" and logs["JAMJAM_SYNC_MAX_AGE_DAYS"] == str(days)


# --- Shiojiri Rainbow Seeker ----------------------------------------------------------------

def test_shiojiri_rainbow_seeker(stacks):
    stack = stacks["shiojiri-rainbow-seeker"]
    found = containers(stack)
    assert {"shiojiri-api", "shiojiri-worker", "shiojiri-db", "shiojiri-cloudflared"} <= set(found)
    assert image(stack, found["shiojiri-db"]).startswith("postgis/postgis:")
    assert image(stack, found["shiojiri-api"]) == image(stack, found["shiojiri-worker"])
    assert found["shiojiri-worker"].inputs["command"] != found["shiojiri-api"].inputs.get("command")
    api = env(found["shiojiri-api"])
    assert api["S3_BUCKET"] == "shiojiri-rainbow-images"
    assert api["AWS_SECRET_ACCESS_KEY"] and api["SECRET_KEY_BASE"]
    assert ingress(stack)[0] == {"hostname": "api.shiojiri-rainbow.app", "service": "http://api:3000"}
    assert checks(stack)["api.shiojiri-rainbow.app/up"]["httpConfig"]["expectedCodes"] == ["2xx"]
    # Migrations before traffic: the serving container waits for the post-deploy run.
    migrate = stack.named("shiojiri-api-post-deploy")
    assert "./bin/rails db:migrate" in str(reveal(migrate.inputs["create"]))
    assert migrate.urn in found["shiojiri-api"].options["dependencies"]
    daily, daily_env = cron(stack, "shiojiri-db-backup-daily")
    six, six_env = cron(stack, "shiojiri-db-backup-every-6h")
    # SYSTEMS.md gives no hour for these: daily, and every 6 hours, are the facts.
    assert is_daily(daily) and daily_env["JAMJAM_KEEP_DAYS"] == "30"
    minute, hour, *rest = six.split()
    runs = hours(hour)
    assert minute.isdigit() and rest == ["*", "*", "*"]
    assert len(runs) == 4 and all(b - a == 6 for a, b in zip(runs, runs[1:])), six
    assert six_env["JAMJAM_KEEP_DAYS"] == "7"
    rules = expiry(stack, "shiojiri-rainbow-backups")
    assert rules["db/shiojiri-db-backup/daily/"] == 30
    assert rules["db/shiojiri-db-backup/every-6h/"] == 7
    assert expiry(stack, "shiojiri-rainbow-images") == {}, "stored images are kept for ever"
    _, alerts = cron(stack, "resource-alert")
    assert alerts["JAMJAM_MEM_ALERT_PERCENT"] == "79" and alerts["JAMJAM_DISK_ALERT_PERCENT"] == "79"


# --- thinkRing ------------------------------------------------------------------------------

def test_thinkring(stacks):
    stack = stacks["thinkring"]
    found = containers(stack)
    assert {"thinkring-frontend", "thinkring-backend", "thinkring-db",
            "thinkring-cloudflared"} <= set(found)
    assert image(stack, found["thinkring-db"]).startswith("postgres:15")
    backend, db = env(found["thinkring-backend"]), env(found["thinkring-db"])
    assert {k: backend[k] for k in ("DEBUG", "DB_NAME", "DB_USER", "DB_HOST", "DB_PORT",
                                    "ALLOWED_HOSTS", "CORS_ALLOWED_ORIGINS")} == {
        "DEBUG": "False", "DB_NAME": "thinkring", "DB_USER": "thinkring", "DB_HOST": "db",
        "DB_PORT": "5432", "ALLOWED_HOSTS": "thinkring.example.com",
        "CORS_ALLOWED_ORIGINS": "https://thinkring.example.com"}
    assert backend["DB_PASSWORD"] == db["POSTGRES_PASSWORD"]
    assert backend["SECRET_KEY"] != backend["JWT_SECRET_KEY"]
    assert is_secret(found["thinkring-backend"].inputs["envs"])
    rules = ingress(stack)
    assert rules[:2] == [
        {"hostname": "thinkring.example.com", "path": "^/api/", "service": "http://backend:8000"},
        {"hostname": "thinkring.example.com", "service": "http://frontend:3000"}]
    check = checks(stack)["thinkring.example.com/api/v1/health/"]
    assert check["httpConfig"]["expectedCodes"] == ["200"]
    steps = str(reveal(stack.named("thinkring-backend-post-deploy").inputs["create"]))
    assert steps.index("manage.py migrate --noinput") < steps.index("manage.py collectstatic --noinput")
    for container in found.values():
        assert container.inputs["logOpts"] == {"max-size": "10m", "max-file": "3"}
    schedule, variables = cron(stack, "thinkring-db-backup-daily")
    assert schedule == "0 2 * * *" and variables["JAMJAM_KEEP_DAYS"] == "7"
    _, drill = cron(stack, "thinkring-db-backup-restore-drill")
    assert drill["JAMJAM_DRILL_MAX_AGE_HOURS"] == "25", "RPO 24 h"
    assert 0 < int(drill["JAMJAM_DRILL_MAX_RESTORE_SECONDS"]) <= 4 * 3600, "within the 4 h RTO"


def test_the_plan_is_the_same_rendered_in_workers_or_in_one_process():
    def plan(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "tools.plan_examples", "--with-jamjam",
                                 *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout
    assert plan("--jobs", "2") == plan("--jobs", "1")


def test_a_broken_example_is_one_line_per_key_and_exit_2(tmp_path):
    import shutil
    project = tmp_path / "thinkring"
    shutil.copytree(EXAMPLES["thinkring"], project)
    stack_file = project / "Pulumi.production.yaml"
    stack_file.write_text(stack_file.read_text().replace("postgres:15.8", "postgres")
                          .replace("thinkring.example.com", "thinkring.example.org"))
    result = subprocess.run([sys.executable, "-m", "tools.plan_examples", str(project),
                             str(EXAMPLES["r-stream"])], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("thinkring: Pulumi.production.yaml: thinkring:images.db: needs "
                               "a tag or digest")
    assert "thinkring:hostname: must be inside the zone 'example.com'" in lines[1]
    assert "Project r-stream" in result.stdout, "the other project still renders"


@pytest.mark.parametrize("key", ["sshPrivateKey", "alertWebhookUrl"])
def test_a_secret_key_set_in_plaintext_is_refused(key):
    # The value only has to be present in plaintext; it is made up here, not a credential.
    with pytest.raises(Exception) as raised:
        render("production", project_dir=EXAMPLES["workspace-backend"],
               overrides={key: "plaintext-" + "x" * 8})
    (line,) = raised.value.lines
    assert line.startswith(f"workspace-backend:{key}: is stored in plaintext; set it again "
                           f"with --secret; fix: pulumi config rm --stack production "
                           f"workspace-backend:{key} && pulumi config set --stack production "
                           f"--secret workspace-backend:{key} ")
    assert not raised.value.registered
