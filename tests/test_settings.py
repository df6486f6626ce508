"""Bad stack config fails before any resource is registered, with one line naming the key."""

from __future__ import annotations

import pytest

from settings import SettingsError
from tools.render import render

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
     "jamjam:images.redis", "not a known setting"),
    ({"images": "cloudflare/cloudflared:2025.11.1"}, "jamjam:images", "map of settings"),
    ({"ports": {"echo": 8080}}, "jamjam:ports.echo", "clashes"),
    ({"ports": {"echo": 22}}, "jamjam:ports.echo", "clashes"),
    ({"ports": {"ssh": 8080}}, "jamjam:ports.ssh", "clashes"),
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
]


def _render_bad(change: dict) -> Exception:
    change = dict(change)
    remove = change.pop("remove", [])
    with pytest.raises(SettingsError) as caught:
        render("production", overrides=change, remove=remove)
    return caught.value


@pytest.mark.parametrize("change,key,words", BAD_INPUTS, ids=[c[1] + ":" + c[2] for c in BAD_INPUTS])
def test_bad_value_fails_early_with_one_line_naming_the_key(change, key, words):
    error = _render_bad(change)
    message = str(error)
    assert message.startswith(key + ":"), message
    assert words in message, message
    assert "; fix: pulumi config " in message, message
    assert "\n" not in message, message
    assert error.registered == (), "resources were registered before the config error"


def test_a_secret_in_error_messages_is_never_echoed():
    error = _render_bad({"sshPrivateKey": {"secret": "hunter2-do-not-print"}})
    assert "hunter2" not in str(error)


def test_there_are_at_least_fifteen_distinct_bad_inputs():
    assert len({(c[1], c[2]) for c in BAD_INPUTS}) >= 15


def test_operator_keys_missing_are_reported_not_invented_outside_the_plan():
    with pytest.raises(SettingsError) as caught:
        render("test", use_examples=False)
    assert str(caught.value).startswith("jamjam:")
    assert "pulumi config set" in str(caught.value)


def test_good_overrides_are_accepted():
    stack = render("test", overrides={"echoDelayMs": "250", "logLevel": "trace",
                                      "ports": {"echo": 5001}})
    echo = stack.named("jamjam-echo")
    assert "--delay" in echo.inputs["command"]
    assert echo.inputs["command"][echo.inputs["command"].index("--delay") + 1] == "250"
    assert "RUST_LOG=trace" in echo.inputs["envs"]
    assert echo.inputs["ports"] == [{"internal": 5001.0, "external": 5001.0, "protocol": "udp"}]
