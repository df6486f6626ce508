"""What the real providers refuse at `pulumi up` although preview (and dockerd) accept it:
an empty command element (the docker provider), a DNS record comment over 100 characters
(Cloudflare's Free plan), the deprecated `:` security-opt separator. Checked in the library,
in the rehearsal's applier, and over every rendered stack of every project."""

from __future__ import annotations

from pathlib import Path

import pytest

from jamjam_infra.container import ContainerSpec, Healthcheck, SpecError
from jamjam_infra.tunnel import DNS_COMMENT_MAX, dns_comment
from rehearsal.apply import provider_create_checks
from rehearsal.engine import RehearsalError
from tools.render import RenderedStack, render

ROOT = Path(__file__).resolve().parent.parent
CONTAINER = "docker:index/container:Container"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
PROJECTS = sorted(p.parent for p in (ROOT / "examples").glob("*/Pulumi.yaml"))


@pytest.fixture(scope="module")
def every_stack() -> dict[str, RenderedStack]:
    stacks = {f"jamjam/{s}": render(s) for s in ("production", "test")}
    stacks.update({f"{p.name}/production": render("production", project_dir=p) for p in PROJECTS})
    return stacks


def _spec(**fields) -> ContainerSpec:
    return ContainerSpec(role="cache", name="cache", image="redis:7.4.1", host="vps",
                         healthcheck=Healthcheck(("redis-cli", "ping")), **fields)


@pytest.mark.parametrize("field,argv", [
    ("command", ("redis-server", "--save", "", "--appendonly", "no")),
    ("command", ("redis-server", " ")),
    ("entrypoint", ("",)),
])
def test_library_refuses_an_empty_argument(field, argv):
    with pytest.raises(SpecError, match=rf"container 'cache': {field} has an empty element"):
        _spec(**{field: argv})


def test_library_accepts_save_without_a_value():
    assert _spec(command=("redis-server", "--save", "--appendonly", "no")).command[1] == "--save"


def test_applier_refuses_what_the_provider_refuses():
    with pytest.raises(RehearsalError, match="values for command may not be empty"):
        provider_create_checks({"name": "c", "command": ["redis-server", "--save", ""]})
    with pytest.raises(RehearsalError, match="restart must be one of"):
        provider_create_checks({"name": "c", "restart": "sometimes"})
    with pytest.raises(RehearsalError, match="memory_swap must be at least -1"):
        provider_create_checks({"name": "c", "memorySwap": -2})


def test_every_rendered_container_passes_the_providers_create_checks(every_stack):
    seen = 0
    for name, stack in every_stack.items():
        for container in stack.of_type(CONTAINER):
            provider_create_checks(container.inputs)
            assert container.inputs["securityOpts"] == ["no-new-privileges=true"], name
            seen += 1
    assert seen >= 2 * 3 + 4 * 3


def test_dns_comments_fit_the_free_plan(every_stack):
    records = [r for stack in every_stack.values() for r in stack.of_type(DNS_RECORD)]
    assert len(records) >= 6
    for record in records:
        assert len(record.inputs["comment"]) <= DNS_COMMENT_MAX, record.name


def test_a_long_tunnel_name_is_cut_not_refused():
    short = dns_comment("jamjam-production")
    assert short == "Cloudflare Tunnel jamjam-production; managed by Pulumi (jamjam-infra)"
    long = dns_comment("shiojiri-rainbow-seeker-" + "x" * 80)
    assert len(long) == DNS_COMMENT_MAX and "shiojiri-rainbow-seeker-" in long and "..." in long
