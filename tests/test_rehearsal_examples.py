"""The rehearsal of the four example projects (`python -m rehearsal --project examples/<name>`):
first its answer to a bad --project or --stack and the project-neutral readings of the plan it
relies on (no root), then one whole rehearsal per example, for real (root, a few minutes each):
every step passes and each job left its effect (dumps in the local S3, the drill restored,
synced files byte for byte, the post-deploy steps' table and static files)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from rehearsal import checks
from rehearsal.__main__ import bumped_reference, job_kind, override_for
from rehearsal.engine import leftovers
from tests.cron_helpers import cron_env
from tools.render import ROOT, load_project, render, reveal

EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/Pulumi.yaml"))
VOLUME = "docker:index/volume:Volume"


@pytest.fixture(scope="module")
def rendered():
    return {name: render("production", project_dir=ROOT / "examples" / name) for name in EXAMPLES}


def _rehearse(*args: str, cwd=ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rehearsal", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("args,names", [
    (["--project", "examples/no-such-project"], ["--project", "no such directory", "examples/thinkring"]),
    (["--project", "tools"], ["--project", "no Pulumi.yaml there", "examples/r-stream"]),
    (["--project", "examples/thinkring", "--stack", "test"],
     ["--stack", "'test' is not a stack of examples/thinkring", "production"]),
    (["--project"], ["--project", "expected one argument"]),
])
def test_a_bad_project_or_stack_gets_one_line_naming_it_and_the_fix(args, names):
    proc = _rehearse(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert proc.stdout == ""


def test_a_project_is_found_from_another_working_directory(tmp_path):
    # Relative to the repository when not relative to where it runs; the stack check then
    # reads that project's stacks (so a wrong --stack is what fails, not the --project).
    proc = _rehearse("--project", "examples/workspace-backend", "--stack", "staging", cwd=tmp_path)
    assert proc.returncode == 2
    assert "'staging' is not a stack of examples/workspace-backend" in proc.stderr


def test_each_example_has_the_stack_the_rehearsal_defaults_to():
    for name in EXAMPLES:
        assert "production" in load_project(ROOT / "examples" / name).stacks


def test_a_pin_change_comes_from_the_examples_own_stack_config(rendered):
    for name, stack in rendered.items():
        project = ROOT / "examples" / name
        reference = reveal(stack.of_type("docker:index/remoteImage:RemoteImage")[0].inputs)["name"]
        (key, value), = override_for("production", reference, bumped_reference(reference), project).items()
        assert key == "images" and bumped_reference(reference) in value.values(), (name, key, value)
        assert render("production", overrides={key: value}, project_dir=project)
        with pytest.raises(Exception, match="not a value of the stack config"):
            override_for("production", reference, bumped_reference(reference))  # jamjam's config


def test_every_example_routes_its_tunnel_to_a_container_origin(rendered):
    for name, stack in rendered.items():
        routes = checks.tunnel_routes(stack)
        aliases = {a for c in checks.containers(stack) for n in c.get("networksAdvanced") or []
                   for a in n.get("aliases") or []}
        assert routes, name
        for route in routes:
            host = re.match(r"https?://([^:/]+)", route["service"]).group(1)
            assert host in aliases, (name, route)
        assert len(checks.connectors(stack)) == 1, name


def test_route_paths():
    assert checks.route_path(None) == "/"
    assert checks.route_path("^/api/") == "/api/"
    assert checks.route_path("^/static/.*$") == "/static/"
    assert checks.route_path("api") == "/api"


class _FakeDocker:
    """The docker CLI as the checks call it, answering from a table (argv tail -> output)."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def __call__(self, *args, check=True, timeout=60, input=None):
        self.calls.append(args)
        code, out = self.answer(args)
        return subprocess.CompletedProcess(args, code, out.encode(), b"")


@pytest.mark.parametrize("reply,error", [
    ("HTTP/1.0 200 OK\r\n", None), ("HTTP/1.1 404 Not Found\r\n", None),
    ("HTTP/1.0 503 Service Unavailable\r\n", "answers HTTP/1.0 503"),
    ("", "no HTTP answer from inside thinkring-cloudflared's network"),
])
def test_a_tunnel_origin_must_answer_below_500_from_the_connectors_network(rendered, reply, error):
    docker = _FakeDocker(lambda args: (0, reply))
    stack = rendered["thinkring"]
    if error:
        with pytest.raises(Exception, match=error):
            checks.tunnel_origins(stack, docker, "sha256:probe")
        return
    lines = checks.tunnel_origins(stack, docker, "sha256:probe")
    assert len(lines) == 2 and all(reply.strip() in line for line in lines)
    # Joined to the connector's network namespace, with the public hostname as Host.
    api = next(c for c in docker.calls if "backend" in c)
    assert api[:4] == ("run", "--rm", "--network", "container:thinkring-cloudflared")
    assert "GET /api/ HTTP/1.0\r\nHost: thinkring.example.com\r\n\r\n" in api


def test_tables_are_seeded_up_to_what_the_drill_wants():
    created = []

    def answer(args):
        sql = args[-1]
        if sql.startswith("SELECT count(*)"):
            return 0, "3\n"
        created.append(sql)
        return 0, ""

    assert "3 tables, 7 seeded" in checks.seed_tables(_FakeDocker(answer), "db", 10)
    assert len(created) == 7 and all("CREATE TABLE rehearsal_seed_" in sql for sql in created)
    assert "none seeded" in checks.seed_tables(_FakeDocker(answer), "db", 2)


def test_post_deploy_steps_are_found_by_what_they_do(rendered):
    found = {name: [(c.name, [w["name"] for w in waiting], runs)
                    for c, waiting, runs in stack.post_deploy_steps()]
             for name, stack in rendered.items()}
    assert found["thinkring"] == [("thinkring-backend-post-deploy", ["thinkring-backend"], [
        ["python", "manage.py", "migrate", "--noinput"],
        ["python", "manage.py", "collectstatic", "--noinput"]])]
    (command, waiting, runs), = found["shiojiri-rainbow-seeker"]
    assert "shiojiri-api" in waiting and any("db:migrate" in " ".join(r) for r in runs), runs
    assert found["r-stream"] == [] and found["workspace-backend"] == []


def test_every_job_of_the_examples_has_a_known_kind(rendered):
    kinds = {}
    for name, stack in rendered.items():
        for path, content in stack.host_files().items():
            if path.startswith("/etc/cron.d/") and isinstance(content, str):
                env = cron_env(content)
                kinds[(name, path.rsplit("/", 1)[1])] = job_kind(env)
    assert {k for k in kinds.values()} == {"backup", "drill", "sync", "logs", "other"}
    assert kinds[("r-stream", "jamjam-sync-archives")] == "sync"
    assert kinds[("shiojiri-rainbow-seeker", "jamjam-shiojiri-db-backup-every-6h")] == "backup"
    assert kinds[("thinkring", "jamjam-thinkring-db-backup-restore-drill")] == "drill"
    assert kinds[("workspace-backend", "jamjam-upload-logs-to-r2")] == "logs"
    assert kinds[("thinkring", "jamjam-heal-containers")] == "other"


def test_database_volumes_are_retained_on_delete(rendered):
    for name, stack in rendered.items():
        volumes = stack.of_type(VOLUME)
        assert volumes and all(v.options["retainOnDelete"] for v in volumes), name


def test_rclone_paths():
    assert checks.rclone_path("r2:rstream-backups/logs/access") == ("rstream-backups", "logs/access")
    assert checks.rclone_path("r2:jamjam-logs") == ("jamjam-logs", "")


# ---- the whole rehearsal, for real -------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, dockerd")

COMMON_STEPS = ("apply plan", "containers healthy", "stand-ins behave",
                "tunnel origins answer the connector", "post-deploy steps", "internet probes",
                "ssh hardened", "engine enforces declared limits", "pids limit (fork bomb)",
                "cron files parse", "jobs: set up", "job effect: unhealthy container restarted",
                "job effect: alerts reached the webhook", "job effect: logs in S3 byte for byte",
                "re-apply unchanged", "replace image pin", "destroy", "clean up")
# What each example's jobs must have left, beyond the common ones (docs/rehearsal.md).
EFFECTS = {
    "r-stream": ["job effect: rstream-db-backup daily dump in S3",
                 "job effect: rstream-db-backup restore drill passed",
                 *(f"job effect: {s} synced to S3 byte for byte" for s in
                   ("access-logs", "archives", "error-logs", "recordings", "security-logs"))],
    "shiojiri-rainbow-seeker": ["job effect: shiojiri-db-backup daily dump in S3",
                                "job effect: shiojiri-db-backup every-6h dump in S3",
                                "job effect: shiojiri-db-backup restore drill passed"],
    "thinkring": ["job effect: thinkring-db-backup daily dump in S3",
                  "job effect: thinkring-db-backup restore drill passed"],
    "workspace-backend": ["job effect: workspace-db-backup daily dump in S3",
                          "job effect: workspace-db-backup restore drill passed"],
}


@pytest.mark.rehearsal
@needs_root
@pytest.mark.parametrize("example", EXAMPLES)
def test_a_whole_example_rehearsal_passes_and_leaves_nothing(example):
    proc = _rehearse("--project", f"examples/{example}", timeout=900)
    out = proc.stdout
    header = f"\nrehearsal of stack production of examples/{example}\n"
    assert header in out, out[-4000:] + proc.stderr[-2000:]
    summary = out[out.index(header):]
    for step in (*COMMON_STEPS, *EFFECTS[example]):
        assert re.search(rf"^{re.escape(step)} +[\d.]+  ok ", summary, re.M), (step, summary)
    assert "FAIL" not in summary and proc.returncode == 0, summary
    # Every route's origin answered the connector, each with its own line.
    assert len(re.findall(r"-> http://\S+: HTTP/1\.\d [1-4]\d\d", out)) >= 1, out[-4000:]
    # The library keeps database volumes on destroy, and the rehearsal says it checked so.
    assert re.search(r"volumes the plan keeps on purpose \(retainOnDelete\): .*db-data", out), out[-3000:]
    if example == "thinkring":
        assert "table rehearsal_migrations in thinkring-db" in out
        assert re.search(r"file\(s\) in volume thinkring-static", out)
    if example == "shiojiri-rainbow-seeker":
        assert "table rehearsal_migrations in shiojiri-db" in out
    tag = re.search(r"run tag (\w+)", out).group(1)
    assert leftovers(tag) == []
