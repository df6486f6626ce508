"""The one way this program puts a file on the VPS or runs a shipped script there.

Everything goes over pulumi-command's SSH connection as the day-to-day user with ``sudo -n``.
Content always travels on stdin: a command line is visible in the host's process list and is
kept in state in plaintext, stdin of a secret Output is kept encrypted.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

import pulumi
import pulumi_command as command

FILES = Path(__file__).parent / "files"


def read_file(name: str) -> str:
    """A file shipped to the host, as it is in the repo (components/files/<name>)."""
    return (FILES / name).read_text()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def connection(host: str, port: int, user: str, private_key: pulumi.Input[str],
               host_key: str) -> command.remote.ConnectionArgs:
    # host_key is required: without it pulumi-command ignores the host's key altogether.
    return command.remote.ConnectionArgs(
        host=host, port=port, user=user, private_key=private_key, host_key=host_key,
        # A VPS that is rebooting (unattended upgrades) should not fail the whole update.
        dial_error_limit=20, per_dial_timeout=15,
    )


def sudo(*argv: str) -> str:
    return "sudo -n " + shlex.join(argv)


def remote_file(name: str, conn: command.remote.ConnectionArgs, path: str,
                content: pulumi.Input[str], mode: str, secret: bool = False,
                opts: pulumi.ResourceOptions | None = None) -> command.remote.Command:
    """A file on the host that Pulumi owns: written on create and on every content change,
    removed when the resource is deleted.

    The content lands under a temporary name (with a dot, which cron ignores) and is renamed
    into place, so cron or a running job never reads half a file. For secret content, command
    logging is off so nothing the host prints is kept in state.
    """
    staged = f"{path}.pulumi-new"
    write = (sudo("install", "-D", "-o", "root", "-g", "root", "-m", mode, "/dev/stdin", staged)
             + " && " + sudo("mv", "-f", staged, path))
    return command.remote.Command(
        name,
        connection=conn,
        create=write,
        update=write,
        delete=sudo("rm", "-f", path),
        stdin=content,
        logging=command.remote.Logging.NONE if secret else command.remote.Logging.STDOUT_AND_STDERR,
        add_previous_output_in_env=False,
        opts=opts,
    )


def remote_script(name: str, conn: command.remote.ConnectionArgs, script: str,
                  args: list[str], delete_args: list[str] | None = None, use_sudo: bool = True,
                  triggers: list[pulumi.Input[str]] | None = None,
                  opts: pulumi.ResourceOptions | None = None,
                  text: str | None = None) -> command.remote.Command:
    """Install components/files/<script> on the host as /usr/local/sbin/jamjam-<stem> and run it.
    ``text`` replaces the file's content where the program fills values into it.

    The script is installed before it runs (not piped into ``bash -s``) so that nothing it
    starts can swallow the rest of it from stdin, and so that ``delete`` still has it to run.
    A change to the script or its arguments runs it again; it must be idempotent.
    """
    path = f"/usr/local/sbin/jamjam-{Path(script).stem}"
    prefix = (lambda *argv: sudo(*argv)) if use_sudo else (lambda *argv: shlex.join(argv))
    create = prefix("install", "-D", "-m", "0755", "/dev/stdin", path) + " && " + prefix(path, *args)
    delete = None
    if delete_args is not None:
        delete = prefix(path, *delete_args) + " && " + prefix("rm", "-f", path)
    return command.remote.Command(
        name,
        connection=conn,
        create=create,
        update=create,
        delete=delete,
        stdin=read_file(script) if text is None else text,
        triggers=triggers,
        add_previous_output_in_env=False,
        opts=opts,
    )
