"""env-secrets-are-pulumi-secrets, and the compat that lets a rule see secrets at all.

Values are wrapped with :func:`secret` the way the engine sends a Pulumi secret; the analyzer
path (protobuf, the pack's deserializer, the unknown proxy) is the one the CLI runs.
"""

from __future__ import annotations

import pytest

from tests.policy_fixtures import (
    COMMAND, CONTAINER, ECHO, SYSTEMS, UNKNOWN, analyzer_props, assert_break, changed, secret,
    violations,
)
from jamjam_policies import _compat  # noqa: E402
from jamjam_policies._props import UNKNOWN_SECRET, is_secret, is_unknown, plain  # noqa: E402
from jamjam_infra.rules import says_secret

RULE = "env-secrets-are-pulumi-secrets"
LOCAL_COMMAND = "command:local:Command"
JOB = {"create": "/opt/jamjam/scripts/pg-backup.sh", "environment": {"PGDATABASE": "app"}}


def envs(*entries):
    return changed(ECHO, "envs", list(entries))


BREAKS = [
    (RULE, CONTAINER, envs("POSTGRES_PASSWORD=hunter2"), "sets POSTGRES_PASSWORD in envs in plaintext"),
    (RULE, CONTAINER, envs("DB_PASSWORD=x"), "DB_PASSWORD"),
    (RULE, CONTAINER, envs("TWITCH_CLIENT_SECRET=x"), "TWITCH_CLIENT_SECRET"),
    (RULE, CONTAINER, envs("SECRET_KEY=x"), "SECRET_KEY"),
    (RULE, CONTAINER, envs("JWT_SECRET_KEY=x"), "JWT_SECRET_KEY"),
    (RULE, CONTAINER, envs("RAILS_MASTER_KEY=x"), "RAILS_MASTER_KEY"),
    (RULE, CONTAINER, envs("TUNNEL_TOKEN=x"), "TUNNEL_TOKEN"),
    (RULE, CONTAINER, envs("R2_ACCESS_KEY_ID=x"), "R2_ACCESS_KEY_ID"),
    (RULE, CONTAINER, envs("api_key=x"), "api_key"),
    (RULE, CONTAINER, envs("STRIPE_APIKEY=x"), "STRIPE_APIKEY"),
    (RULE, CONTAINER, envs("MYSQL_ROOT_PASSWD=x"), "MYSQL_ROOT_PASSWD"),
    (RULE, CONTAINER, envs("RUST_LOG=info", "ADMIN_PASSWORD=x", secret("DB_PASSWORD=y")), "ADMIN_PASSWORD"),
    (RULE, COMMAND, changed(JOB, "environment", {"PGPASSWORD": "x"}), "sets PGPASSWORD in environment"),
    (RULE, LOCAL_COMMAND, changed(JOB, "environment", {"CLOUDFLARE_API_TOKEN": "x"}), "CLOUDFLARE_API_TOKEN"),
    # fail closed: unknown and not known to be a secret
    (RULE, CONTAINER, envs("RUST_LOG=info", UNKNOWN), "an entry in envs that is unknown at preview"),
    (RULE, CONTAINER, changed(ECHO, "envs", UNKNOWN), "envs unknown at preview and not a Pulumi secret"),
    (RULE, COMMAND, changed(JOB, "environment", {"PGPASSWORD": UNKNOWN}), "value unknown at preview"),
    (RULE, COMMAND, changed(JOB, "environment", UNKNOWN), "environment unknown at preview"),
]


@pytest.mark.parametrize("policy_name,type_,inputs,expected", BREAKS,
                         ids=[f"{c[0]}-{c[3]}" for c in BREAKS])
def test_each_way_to_break_a_rule_is_reported(policy_name, type_, inputs, expected):
    assert_break(policy_name, type_, inputs, expected)


@pytest.mark.parametrize("inputs", [
    envs(secret("POSTGRES_PASSWORD=hunter2"), "POSTGRES_USER=app", "POSTGRES_DB=app"),
    envs(secret(UNKNOWN)),                           # a generated password before it exists
    changed(ECHO, "envs", secret(["DB_PASSWORD=x", "RUST_LOG=info"])),  # the whole list secret
    changed(ECHO, "envs", secret(UNKNOWN)),
    envs("POSTGRES_PASSWORD_FILE=/run/secrets/db"),  # Docker's convention: a path, not a secret
    envs("KEYBOARD_LAYOUT=jp", "MONKEYS=3", "DB_PORT=5432", "KEYCLOAK_URL=http://kc:8080"),
    envs("DB_PASSWORD="),                            # nothing to hide
    envs("PASSWORD_LESS_LOGIN"),                     # no value: passes the host's through
    changed(JOB, "environment", {"PGPASSWORD": secret("x"), "PGDATABASE": "app"}),
    changed(JOB, "environment", secret({"PGPASSWORD": "x"})),
])
def test_secrets_and_harmless_names_pass(inputs):
    type_ = COMMAND if "environment" in inputs else CONTAINER
    assert violations(RULE, type_, inputs) == []


def test_tokenizer_is_a_secret_name_by_the_letter():
    # TOKEN and SECRET match anywhere in a part: a rare false alarm beats a missed token.
    assert says_secret("TOKENIZER", ["TOKEN"]) and not says_secret("KEYBOARD", ["KEY"])


def test_exemptions_and_markers_come_from_config():
    plain_id = envs("PUBLIC_KEY_ID=abc")
    assert violations(RULE, CONTAINER, plain_id)
    assert violations(RULE, CONTAINER, plain_id, config={"plaintextNames": ["PUBLIC_KEY_ID"]}) == []
    assert violations(RULE, CONTAINER, envs("DSN=x"), config={"secretNameMarkers": ["DSN"]})


def test_every_system_keeps_its_secrets_secret():
    for system, (resources, _) in SYSTEMS.items():
        for type_, name, inputs, *_ in resources:
            assert violations(RULE, type_, inputs, name) == [], (system, name)


# --- the compat: secret markers survive into the rules ------------------------------------

def test_secret_strings_stay_strings_and_say_they_were_secret():
    props = plain(analyzer_props({"a": secret("x"), "b": "y", "c": secret(UNKNOWN), "d": UNKNOWN,
                                  "e": secret({"f": ["g"]}), "n": secret(3)}))
    assert props["a"] == "x" and isinstance(props["a"], str) and is_secret(props["a"])
    assert props["b"] == "y" and not is_secret(props["b"])
    assert props["c"] is UNKNOWN_SECRET and is_unknown(props["c"]) and is_secret(props["c"])
    assert is_unknown(props["d"]) and not is_secret(props["d"])
    assert is_secret(props["e"]["f"][0])
    assert props["n"] == 3.0


def test_an_unknown_secret_still_raises_for_rules_reading_props_directly():
    from pulumi_policy.proxy import UnknownValueError
    with pytest.raises(UnknownValueError):
        analyzer_props({"c": secret(UNKNOWN)})["c"]


def test_install_patches_the_analyzer_once_and_refuses_an_unknown_sdk(monkeypatch):
    import pulumi_policy.policy as policy_module
    assert policy_module.deserialize_properties is _compat.deserialize_properties
    _compat.install()
    assert policy_module.deserialize_properties is _compat.deserialize_properties
    monkeypatch.setattr(policy_module, "deserialize_properties", lambda props, proxy=False: props)
    with pytest.raises(RuntimeError, match="_compat.py must be updated"):
        _compat.install()


def test_remediation_keeps_the_sdk_behaviour():
    from pulumi_policy import Secret
    from tests.policy_fixtures import SECRET_SIG, SECRET_VALUE
    wrapped = {"p": {SECRET_SIG: SECRET_VALUE, "value": "x"}}
    proxied = _compat.deserialize_properties(wrapped, True)
    assert proxied["p"] == "x" and isinstance(proxied["__target"]["p"], Secret)
