"""A host key for library tests that build SshArgs by hand (required since every connection
pins one): well-formed, built at run time, all zero bytes, so never anyone's key."""

from __future__ import annotations

import base64
import struct


def fake_host_key() -> str:
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes(32)
    return "ssh-ed25519 " + base64.b64encode(blob).decode()
