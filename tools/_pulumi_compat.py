"""The one place that reaches into private parts of the Pulumi Python SDK.

The public SDK has no API for what the offline render and the settings check need: running a
program function outside the engine, waiting on an Output from synchronous code, resetting the
root stack resource between two renders in one process, the wire format of a secret, whether
a config value was stored encrypted, and skipping the stack trace the SDK captures for every
resource (a fifth of an offline render); and the engine's analyzer protocol, which the policy
tests speak to the pack's own gRPC server as `pulumi preview` does. Each of these is a private
name that an SDK upgrade may move; importing them only here means such an upgrade touches this
file alone, and the import below fails at once, naming the symbol, rather than deep inside a
render.

The config reader's two needs (every config key, whether one is encrypted) are on the deploy
path, so they live in the library (jamjam_infra._config_compat) and are re-exported here.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, TypeVar

from pulumi.runtime import resource as _resource
from pulumi.runtime import rpc as _rpc
from pulumi.runtime import settings as _settings
from pulumi.runtime.stack import run_pulumi_func as _run_pulumi_func
from pulumi.runtime.proto import source_pb2 as _source_pb2
# The generated analyzer messages and stub, as they are: the wire format, no behaviour to wrap.
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc  # noqa: F401
from pulumi.runtime.sync_await import _sync_await

# What a config reader needs lives with the reader, on the deploy path; re-exported here for
# the offline tooling.
from jamjam_infra._config_compat import config_keys, is_config_secret  # noqa: F401

T = TypeVar("T")

SECRET_SIG: str = _rpc._special_sig_key
"""Key that marks a serialized value as special (a secret, an asset, a resource reference)."""
SECRET_VALUE: str = _rpc._special_secret_sig
"""Value of that key for a secret; the secret itself sits under ``"value"``."""


def sync_await(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion on the SDK's event loop, from synchronous code."""
    return _sync_await(awaitable)


def run_program(func: Callable[[], Any]) -> None:
    """Run a Pulumi program function the way the language host does, waiting for every
    resource registration and output it starts."""
    _sync_await(_run_pulumi_func(func))


def reset_root_resource() -> None:
    """Forget the stack resource of a previous run, so the next ``set_mocks`` registers a new one."""
    _settings.set_root_resource(None)  # type: ignore[arg-type]


def root_resource() -> Any:
    """The stack resource of the current run (its ``outputs`` are the stack exports)."""
    return _settings.get_root_resource()


UNKNOWN: str = _rpc.UNKNOWN
"""What the engine sends for a value unknown at preview (to providers and policy packs alike)."""


def deserialize_properties(struct: Any) -> Any:
    """A registration's inputs as plain values (secrets as the wire format), each value unknown
    at preview as the engine's :data:`UNKNOWN` string, the form a policy pack receives."""
    from pulumi.output import Unknown

    def wire(value: Any) -> Any:
        if isinstance(value, Unknown):
            return UNKNOWN
        if isinstance(value, dict):
            return {key: wire(item) for key, item in value.items()}
        if isinstance(value, list):
            return [wire(item) for item in value]
        return value

    return wire(_rpc.deserialize_properties(struct, keep_unknowns=True))


# Looked up now, so an SDK that renamed it fails at import, naming it, rather than the switch
# below silently patching a name nothing calls any more.
_CAPTURE_STACK_TRACE = _resource._get_stack_trace


def set_source_positions(enabled: bool) -> None:
    """Whether each resource registered from now on in this process carries the Python stack
    trace (and the source position taken from it) of the code that declared it. Offline
    renders turn it off.

    The SDK walks the whole interpreter stack and turns every frame into a file URI for each
    resource, so that the engine can point its UI and diagnostics at the line that declared
    it. Under the mock monitor nothing reads them: they travel in the registration request's
    ``sourcePosition`` and ``stackTrace`` fields, which are never part of a resource's inputs,
    options or URN, so what a render records is the same with them or without. The real CLI
    never turns it off (only tools/render.py does), so deployments keep their positions."""
    _resource._get_stack_trace = (  # type: ignore[attr-defined]
        _CAPTURE_STACK_TRACE if enabled else _no_stack_trace)


def source_positions_enabled() -> bool:
    """See :func:`set_source_positions`."""
    return _resource._get_stack_trace is _CAPTURE_STACK_TRACE  # type: ignore[attr-defined]


def _no_stack_trace() -> Any:
    # What the SDK itself returns when it finds no user frame: an empty trace, no position.
    return _source_pb2.StackTrace()
