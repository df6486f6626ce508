"""Secrets the program generates itself (database passwords, Django/JWT signing keys)."""

from __future__ import annotations

import pulumi
import pulumi_random as random


def generated_secret(name: str, length: int = 32, special: bool = False,
                     opts: pulumi.ResourceOptions | None = None) -> pulumi.Output[str]:
    """A random secret kept in state (encrypted) and stable across runs; pass the Output to
    every ContainerSpec that needs it (the db's POSTGRES_PASSWORD and the app's DATABASE_URL
    then agree by construction).

    ``special`` is off by default: the value ends up inside URLs (postgres://user:<pw>@db/...)
    and env files, where ``@:/%#`` would need escaping. 32 letters and digits are ~190 bits.
    Rotating it is ``pulumi up --replace <urn>``.
    """
    password = random.RandomPassword(name, length=length, special=special, opts=opts)
    # RandomPassword marks `result` secret already; saying it again keeps that true whatever
    # the provider version does.
    return pulumi.Output.secret(password.result)
