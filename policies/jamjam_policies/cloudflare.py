"""Cloudflare: tunnel DNS is proxied, tunnel ingress is closed and verified, logs stay private,
API tokens are scoped to what they need."""

from __future__ import annotations

import json
import re
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, \
    ResourceValidationPolicy

from ._props import is_unknown, label, props_of
from .config import LOG_BUCKET, schema, settings

DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
R2_MANAGED_DOMAIN = "cloudflare:index/r2ManagedDomain:R2ManagedDomain"
R2_CUSTOM_DOMAIN = "cloudflare:index/r2CustomDomain:R2CustomDomain"
API_TOKEN = "cloudflare:index/apiToken:ApiToken"
TUNNEL_SUFFIX = ".cfargotunnel.com"


def _tunnel_dns_proxied(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != DNS_RECORD:
        return
    props = props_of(args)
    content, kind, proxied = props.get("content"), props.get("type"), props.get("proxied")
    if proxied is True:
        return
    if is_unknown(content):
        # Tunnel targets are "<tunnel id>.cfargotunnel.com", unknown until the tunnel exists.
        if kind in ("CNAME", None) or is_unknown(kind):
            report(f"{label(args)} points at a target unknown at preview (a tunnel's, typically) "
                   "and is not known to be proxied. Set proxied true.", None)
        return
    if isinstance(content, str) and content.lower().rstrip(".").endswith(TUNNEL_SUFFIX):
        state = "unknown at preview" if is_unknown(proxied) else "not proxied"
        report(f"{label(args)} points at the tunnel {content} but is {state}, so it would "
               "resolve to an address that serves nothing and skip Cloudflare's DDoS "
               "protection. Set proxied true.", None)


def _config(args: ResourceValidationArgs) -> Any:
    return props_of(args).get("config")


def _tunnel_ingress_catch_all(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != TUNNEL_CONFIG:
        return
    config = _config(args)
    ingresses = config.get("ingresses") if isinstance(config, dict) else config
    fix = "End config.ingresses with a rule that has no hostname and no path, e.g. {\"service\": \"http_status:404\"}."
    if is_unknown(ingresses) or (isinstance(ingresses, list) and ingresses and
                                 is_unknown(ingresses[-1])):
        report(f"{label(args)} has ingress rules unknown at preview. {fix}", None)
        return
    if not isinstance(ingresses, list) or not ingresses:
        report(f"{label(args)} has no ingress rules. {fix}", None)
        return
    last = ingresses[-1] if isinstance(ingresses[-1], dict) else {}
    scoped = [key for key in ("hostname", "path") if last.get(key) not in (None, "")]
    if scoped:
        report(f"{label(args)} ends its ingress rules with one that matches a {' and '.join(scoped)}, "
               "so requests for other hostnames have no defined answer. " + fix, None)
    elif not last.get("service"):
        report(f"{label(args)} ends its ingress rules with a rule without a service. {fix}", None)


def _no_tls_verify(origin: Any) -> Any:
    if is_unknown(origin):
        return origin
    return origin.get("noTlsVerify") if isinstance(origin, dict) else None


def _tunnel_origin_tls_verified(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != TUNNEL_CONFIG:
        return
    config = _config(args)
    places: list[tuple[str, Any]] = []
    if is_unknown(config):
        places.append(("config", config))
    elif isinstance(config, dict):
        places.append(("config.originRequest", _no_tls_verify(config.get("originRequest"))))
        ingresses = config.get("ingresses")
        if is_unknown(ingresses):
            places.append(("config.ingresses", ingresses))
        for index, rule in enumerate(ingresses if isinstance(ingresses, list) else []):
            where = f"config.ingresses[{index}]"
            if isinstance(rule, dict) and rule.get("hostname") and not is_unknown(rule["hostname"]):
                where += f" ({rule['hostname']})"
            origin = rule.get("originRequest") if isinstance(rule, dict) else rule
            places.append((where + ".originRequest", _no_tls_verify(origin)))
    for where, value in places:
        if value is True or is_unknown(value):
            state = "unknown at preview" if is_unknown(value) else "noTlsVerify true"
            report(f"{label(args)} has {state} at {where}, which turns off TLS verification "
                   "of the origin. Remove noTlsVerify (or set it to false).", None)


_LOGS_SCHEMA = schema(LOG_BUCKET)


def _logs_bucket_private(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (R2_MANAGED_DOMAIN, R2_CUSTOM_DOMAIN):
        return
    bucket = settings(args, _LOGS_SCHEMA)["logBucket"]
    props = props_of(args)
    name = props.get("bucketName")
    if not is_unknown(name) and name != bucket:
        return
    which = f"the logs bucket {bucket}" if name == bucket else \
        f"a bucket unknown at preview (it may be {bucket})"
    if args.resource_type == R2_CUSTOM_DOMAIN:
        report(f"{label(args)} serves {which} on the custom domain {props.get('domain')!r}, "
               "which makes the container logs public. Delete this custom domain.", None)
    elif props.get("enabled") is True or is_unknown(props.get("enabled")):
        report(f"{label(args)} turns on the public r2.dev URL of {which}, which makes the "
               "container logs public. Set enabled false.", None)


_BARE_ACCOUNT = re.compile(r"^com\.cloudflare\.api\.account\.[^.*]+$")


def _broad_resources(resources: Any, path: str = "") -> list[str]:
    """Why a token's resources map is broader than one bucket or one zone; [] if it is not."""
    if is_unknown(resources):
        return ["its resources are unknown at preview"]
    if isinstance(resources, str):
        try:
            resources = json.loads(resources)
        except ValueError:
            return [f"its resources {resources!r} are not a JSON object"]
    if not isinstance(resources, dict):
        return [f"its resources {resources!r} are not a JSON object"]
    found = []
    for key, value in resources.items():
        if "*" in key:  # "...account.*", "...zone.*", "..._default_*": a wildcard
            found.append(f"{key!r} grants every resource of that kind")
        elif isinstance(value, dict):
            found += _broad_resources(value, key)
        elif _BARE_ACCOUNT.match(key) and not path and value == "*":
            found.append(f"{key!r}: \"*\" grants the whole account")
        elif is_unknown(value):
            found.append(f"the value of {key!r} is unknown at preview")
    return found


def _api_tokens_scoped(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != API_TOKEN:
        return
    policies = props_of(args).get("policies")
    if is_unknown(policies):
        report(f"{label(args)} has policies unknown at preview. Declare them literally, scoped to "
               "one bucket or zone.", None)
        return
    for index, policy in enumerate(policies or []):
        if not isinstance(policy, dict):
            report(f"{label(args)} has policies[{index}] unknown at preview. Scope it to one "
                   "bucket or zone.", None)
            continue
        if policy.get("effect") == "deny":
            continue
        for reason in _broad_resources(policy.get("resources")):
            report(f"{label(args)} policies[{index}]: {reason}. Scope the token to the resources "
                   "it needs, e.g. {\"com.cloudflare.edge.r2.bucket.<account>_default_jamjam-logs\": "
                   "\"*\"} or one zone \"com.cloudflare.api.account.zone.<zone id>\".", None)


POLICIES = [
    ResourceValidationPolicy(
        name="tunnel-dns-proxied",
        description="DNS records that point at a Cloudflare Tunnel (*.cfargotunnel.com) are proxied.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_tunnel_dns_proxied,
    ),
    ResourceValidationPolicy(
        name="tunnel-ingress-catch-all",
        description=("Tunnel configurations end their ingress rules with a catch-all (no hostname, "
                     "no path), e.g. http_status:404."),
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_tunnel_ingress_catch_all,
    ),
    ResourceValidationPolicy(
        name="tunnel-origin-tls-verified",
        description="Tunnel configurations never set originRequest.noTlsVerify, globally or per ingress rule.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_tunnel_origin_tls_verified,
    ),
    ResourceValidationPolicy(
        name="logs-bucket-private",
        description=("The logs bucket (jamjam-logs) has no public domain: no enabled r2.dev "
                     "managed domain and no custom domain."),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=_LOGS_SCHEMA,
        validate=_logs_bucket_private,
    ),
    ResourceValidationPolicy(
        name="api-tokens-scoped",
        description=("Cloudflare API tokens are scoped to specific buckets or zones: no wildcard "
                     "(.*) resource and no whole-account grant."),
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_api_tokens_scoped,
    ),
]
