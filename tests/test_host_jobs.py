"""What the program puts on the host besides containers: the log archive (production only),
scheduled operations, and the one mechanism that installs every scheduled job."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from jamjam_infra.scheduled_job import cron_entry
from tests.config_helpers import configured
from tests.cron_helpers import cron_entry_fields
from tools.render import RenderedStack, is_secret, render, reveal

ROOT = Path(__file__).resolve().parent.parent


def _cron_files(stack: RenderedStack) -> dict[str, str]:
    """/etc/cron.d path -> content, for every cron entry the stack installs."""
    return {path: content for path, content in stack.host_files().items()
            if path.startswith("/etc/cron.d/")}


# --- log archive -------------------------------------------------------------------------

def test_production_archives_logs_to_a_private_bucket(production):
    bucket = production.named("logs-bucket")
    assert bucket.inputs["name"] == "jamjam-logs"
    public = production.named("logs-public-url").inputs
    assert public["enabled"] is False and public["bucketName"] == "jamjam-logs"
    assert not production.of_type("cloudflare:index/r2CustomDomain:R2CustomDomain")
    assert not production.of_type("cloudflare:index/r2BucketLifecycle:R2BucketLifecycle"), \
        "by default logs are kept until deleted by hand"
    assert production.outputs["logBucket"] == "jamjam-logs"


def test_the_archive_token_reaches_one_bucket_only(production):
    token = production.named("logs-token").inputs
    (policy,) = token["policies"]
    resources = json.loads(policy["resources"])
    account = production.named("logs-bucket").inputs["accountId"]
    assert resources == {f"com.cloudflare.edge.r2.bucket.{account}_default_jamjam-logs": "*"}
    assert policy["effect"] == "allow" and len(policy["permissionGroups"]) == 2


def test_rclone_config_derives_s3_keys_from_the_token_and_stays_secret(production):
    config = production.named("logs-rclone-config")
    assert is_secret(config.inputs["stdin"])
    assert config.inputs["logging"] == "none"
    assert "0600" in config.inputs["create"] and "/etc/jamjam/rclone.conf" in config.inputs["create"]
    text = reveal(config.inputs["stdin"])
    fields = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    assert fields["provider"] == "Cloudflare" and fields["acl"] == "private"
    assert fields["endpoint"] == ("https://" + production.named("logs-bucket").inputs["accountId"]
                                  + ".r2.cloudflarestorage.com")
    value = "mock-api-token-value-production"
    assert fields["access_key_id"] == production.named("logs-token").id
    assert fields["secret_access_key"] == hashlib.sha256(value.encode()).hexdigest()
    assert value not in text


def test_upload_runs_hourly_under_flock_with_the_repo_script(production):
    cron = _cron_files(production)["/etc/cron.d/jamjam-upload-logs-to-r2"]
    fields = cron_entry_fields(cron)
    assert fields[:5] == ["0", "*", "*", "*", "*"]
    assert fields[5] == "root" and fields[6:8] == ["flock", "-n"]
    assert "/opt/jamjam/scripts/upload-logs-to-r2.sh" in fields
    assert "JAMJAM_R2_DEST=r2:jamjam-logs" in cron.splitlines()
    assert "RCLONE_CONFIG=/etc/jamjam/rclone.conf" in cron.splitlines()
    script = production.host_files()["/opt/jamjam/scripts/upload-logs-to-r2.sh"]
    assert script == (ROOT / "components/files/upload-logs-to-r2.sh").read_text()


def test_removing_the_job_removes_its_cron_entry_before_its_script(production):
    cron = production.named("logs-upload-cron")
    script = production.named("logs-upload-script")
    assert cron.inputs["delete"] == "sudo -n rm -f /etc/cron.d/jamjam-upload-logs-to-r2"
    # Pulumi deletes dependents first: the entry goes before the script it runs.
    assert script.urn in cron.options["dependencies"]


def test_test_stack_has_no_archive_at_all(test_stack):
    types = {r.type for r in test_stack.resources}
    assert "cloudflare:index/r2Bucket:R2Bucket" not in types
    assert "cloudflare:index/apiToken:ApiToken" not in types
    assert not any("upload-logs" in path for path in _cron_files(test_stack))
    assert "/etc/jamjam/rclone.conf" not in test_stack.host_files()
    assert "logBucket" not in test_stack.outputs


def test_retention_is_a_lifecycle_rule_in_days():
    stack = render("production", overrides={"logArchive": {"enabled": True, "retentionDays": 400}})
    (rule,) = stack.named("logs-retention").inputs["rules"]
    assert rule["enabled"] is True
    assert rule["deleteObjectsTransition"]["condition"] == {"type": "Age",
                                                            "maxAge": 400 * 86400.0}


# --- scheduled operations ----------------------------------------------------------------

def test_operations_jobs_per_stack(production, test_stack):
    prod = _cron_files(production)
    assert cron_entry_fields(prod["/etc/cron.d/jamjam-heal-containers"])[:5] == ["*"] * 5
    hourly = cron_entry_fields(prod["/etc/cron.d/jamjam-resource-alert"])
    assert hourly[1:5] == ["*"] * 4 and hourly[0].isdigit()
    weekly = cron_entry_fields(prod["/etc/cron.d/jamjam-image-scan"])
    assert weekly[2:4] == ["*", "*"] and weekly[4] not in ("*",)
    # SPEC sets no thresholds: the stack's own (or Pulumi.yaml's default) reach the job.
    alert = prod["/etc/cron.d/jamjam-resource-alert"].splitlines()
    for variable, key in (("JAMJAM_DISK_ALERT_PERCENT", "diskAlertPercent"),
                          ("JAMJAM_MEM_ALERT_PERCENT", "memoryAlertPercent")):
        percent = configured(production.stack, f"operations.{key}")
        assert 0 < int(percent) < 100 and f"{variable}={percent}" in alert, key
    assert "/etc/cron.d/jamjam-image-scan" not in _cron_files(test_stack)
    for content in prod.values():
        assert f"JAMJAM_STACK={production.stack}" in content.splitlines()


def test_every_job_script_shipped_is_the_file_in_the_repo(production):
    for path, content in production.host_files().items():
        if path.startswith("/opt/jamjam/scripts/"):
            assert content == (ROOT / "components/files" / Path(path).name).read_text(), path


def test_disabling_a_job_removes_it_from_the_host():
    stack = render("production", overrides={"operations": {"selfHeal": False,
                                                           "resourceAlerts": False}})
    cron = _cron_files(stack)
    assert "/etc/cron.d/jamjam-heal-containers" not in cron
    assert "/etc/cron.d/jamjam-resource-alert" not in cron
    assert "/etc/cron.d/jamjam-image-scan" in cron


def test_thresholds_come_from_stack_config():
    stack = render("test", overrides={"operations": {"diskAlertPercent": 70,
                                                     "memoryAlertPercent": 95}})
    cron = _cron_files(stack)["/etc/cron.d/jamjam-resource-alert"]
    assert "JAMJAM_DISK_ALERT_PERCENT=70" in cron and "JAMJAM_MEM_ALERT_PERCENT=95" in cron


def test_webhook_url_is_a_root_only_file_never_a_command_line():
    url = "https://hooks.example.invalid/webhook-marker-55e1"
    stack = render("test", overrides={"alertWebhookUrl": {"secret": url}})
    hook = stack.named("ops-alert-webhook")
    assert is_secret(hook.inputs["stdin"]) and reveal(hook.inputs["stdin"]).strip() == url
    assert hook.inputs["logging"] == "none" and "-m 0600" in hook.inputs["create"]
    for resource in stack.resources:
        for key in ("create", "update", "delete"):
            assert "webhook-marker" not in json.dumps(resource.inputs.get(key, ""))
    for content in _cron_files(stack).values():
        assert "webhook-marker" not in content


def test_without_a_webhook_no_webhook_file_is_written(test_stack):
    assert "/etc/jamjam/alert-webhook" not in test_stack.host_files()


def test_os_updates_use_unattended_upgrades_in_the_window_without_reboot(production):
    files = production.host_files()
    config = files["/etc/apt/apt.conf.d/52jamjam-unattended-upgrades"]
    assert 'Unattended-Upgrade::Automatic-Reboot "false"' in config
    assert "@AUTOMATIC_REBOOT@" not in config and "@REBOOT_TIME@" not in config
    # The window is a drop-in os-updates.sh owns (tests/test_ops_os_updates.py runs it).
    script = production.named("ops-os-updates")
    # Every night at one fixed time (which one is the library's choice, not SPEC's).
    assert re.search(r"^OnCalendar=\*-\*-\* [0-2][0-9]:[0-5][0-9]$", script.inputs["stdin"],
                     re.MULTILINE)
    rebooting = render("production", overrides={"operations": {"osUpdatesReboot": True}})
    assert 'Unattended-Upgrade::Automatic-Reboot "true"' in \
        rebooting.host_files()["/etc/apt/apt.conf.d/52jamjam-unattended-upgrades"]


def test_external_check_is_off_by_default_and_targets_the_signaling_host(production):
    assert not production.of_type("cloudflare:index/healthcheck:Healthcheck")
    stack = render("production", overrides={"operations": {"externalHealthCheck": True}})
    (check,) = stack.of_type("cloudflare:index/healthcheck:Healthcheck")
    assert check.inputs["address"] == "signaling-jamjam.koeda.me"
    assert check.inputs["type"] == "HTTPS"
    assert check.inputs["name"] == "jamjam-production-signaling"
    assert check.inputs["httpConfig"]["path"] == "/"
    # Any answer from signaling proves tunnel and origin are up; down is Cloudflare's 5xx.
    assert check.inputs["httpConfig"]["expectedCodes"] == ["2xx", "3xx", "4xx"]


# --- the cron mechanism ------------------------------------------------------------------

def test_cron_entry_refuses_values_cron_would_mangle():
    with pytest.raises(ValueError):
        cron_entry("x", "* * * * *", "x.sh", {"TOKEN": "a%b"}, "demo")
    with pytest.raises(ValueError):
        cron_entry("x", "* * * * *", "x.sh", {"lower": "a"}, "demo")
