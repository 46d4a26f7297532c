"""File operations beyond pyinfra's own: a secret-bearing config file validated on the host
before it replaces the one in use (HAProxy's config and certificate, keepalived's config:
tasks/lb.py); put and template, pyinfra's files.put and files.template with one fact per file
instead of three (the deploy's ~60 files are most of a no-change run). None of them lets a
private file's content be read by others on its way: not in the file itself while it is
written, nor in pyinfra's staging copy under _sudo (private_upload, staged_replace)."""

import hashlib
import io
import os
import posixpath
import shlex
from typing import IO

from jinja2 import TemplateRuntimeError, TemplateSyntaxError, UndefinedError
from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, OperationError, QuoteString, StringCommand, operation
from pyinfra.api.output import format_text
from pyinfra.api.util import get_file_io, get_file_sha1, get_template
from pyinfra.facts.files import Directory, FileContents
from pyinfra.operations.util import files as file_utils
from pyinfra.operations.util.files import ensure_mode_int, generate_color_diff

from facts.files import ManagedFile


# Global arguments under which pyinfra uploads as the SSH user into a temporary file, then
# copies it into place as another user.
_ESCALATION = ("_sudo", "_su_user", "_doas", "_dzdo")
_OTHER_USER = ("_su_user", "_sudo_user", "_doas_user", "_dzdo_user")
# How commands run as the SSH user itself, whatever the operation's arguments.
_UNPRIVILEGED = {"_sudo": False, "_su_user": None, "_doas": False, "_dzdo": False}


def private_upload(src, dest):
    """The commands that upload `src` into `dest` without its content ever lying in a file
    others may read. Without privilege escalation SFTP writes `dest` itself. With _sudo (or
    _su_user, _doas, _dzdo) pyinfra first writes a temporary file as the SSH user, created
    with its umask (world-readable, in /tmp); here that file is made inside a new directory
    only the SSH user may enter (mode 0700, a random name, made unprivileged), removed after.
    `dest` itself must already be private when it holds a secret (validated_file, put)."""
    arguments = host.current_op_global_arguments or {}
    if not any(arguments.get(name) for name in _ESCALATION):
        yield FileUploadCommand(src, dest)
        return
    stage = host.get_temp_filename()  # a fresh random name: an existing one fails mkdir
    yield StringCommand("mkdir", "-m", "0700", stage, **_UNPRIVILEGED)
    other = next((arguments[name] for name in _OTHER_USER if arguments.get(name)), None)
    if other:  # pyinfra gives that user read access to the file; it must reach it
        yield StringCommand("setfacl", "-m", f"u:{other}:x", stage, **_UNPRIVILEGED)
    yield FileUploadCommand(src, dest, remote_temp_filename=f"{stage}/upload")
    yield StringCommand("rm", "-rf", stage, **_UNPRIVILEGED)


def private_file(src, dest, user=None, group=None, mode="0600"):
    """The commands that write `src` into `dest`, a file first created empty with this owner
    and mode (so its content is never readable by others), through private_upload."""
    owner = [*(["-o", user] if user else []), *(["-g", group] if group else [])]
    yield StringCommand("install", "-m", mode, *owner, "/dev/null", shlex.quote(dest))
    yield from private_upload(src, dest)


def staged_replace(src, dest, user, group, mode, check=None):
    """The commands that replace `dest` with `src` atomically: written beside it into a file
    created with its final owner and mode (so a secret is never readable by others), checked
    with `check` ("{path}" = that file; a failure removes it and fails), then moved over it."""
    directory, _, filename = dest.rpartition("/")
    staged = f"{directory}/.{filename}.new"
    quoted = shlex.quote(staged)
    yield from private_file(src, staged, user, group, mode)
    if check:
        yield StringCommand(
            "(", check.format(path=quoted), ")", "||", "{", "rm", "-f", quoted, ";", "exit", "1;",
            "}",
        )
    yield StringCommand("mv", "-f", quoted, shlex.quote(dest))


@operation()
def validated_file(content: str, dest: str, user: str, group: str, mode: str, check=None):
    """Install `content` at `dest` (owner, mode) when it differs from what is there.

    The new content is written beside `dest` (created with its final owner and mode, so a
    secret is never readable by others), checked with `check` ("{path}" = that file), and
    only then moved over `dest`. A failed check removes it and fails the operation; the
    installed file, and the service using it, stay as they were. Unlike files.put, it never
    prints the content (--diff): these files hold passwords and keys.
    """
    remote = host.get_fact(ManagedFile, path=dest)
    digest = hashlib.sha1(content.encode()).hexdigest()
    if remote["kind"] == "file" and remote["sha1"] == digest:
        if (remote["user"], remote["group"]) != (user, group):
            yield StringCommand("chown", f"{user}:{group}", shlex.quote(dest))
        if remote["mode"] != int(mode):
            yield StringCommand("chmod", mode, shlex.quote(dest))
        if (remote["user"], remote["group"], remote["mode"]) == (user, group, int(mode)):
            host.noop(f"{dest} is up to date")
        return
    yield from staged_replace(io.StringIO(content), dest, user, group, mode, check)


@operation()
def put(src: str | IO, dest: str, user: str | None = None, group: str | None = None,
        mode: str | int | None = None):
    """Upload `src` (a control machine path, relative to the deploy directory, or a file-like
    object) to `dest` with this owner and mode, as pyinfra's files.put does: a missing parent
    directory is made (mkdir -p, then given `user`/`group`); a differing or missing file is
    uploaded, then chowned and chmodded; a file with the same content only gets its owner and
    mode put right.

    It asks the host once (facts/files.py ManagedFile) where files.put asks three times. A
    file that others may not read (`mode` without o+r: it may hold a secret) is written beside
    `dest` with its final owner and mode and moved over it (staged_replace), and with --diff
    named, never printed."""
    if not hasattr(src, "read") and getattr(state, "cwd", None):
        src = os.path.join(state.cwd, src)
    mode = ensure_mode_int(mode)
    remote = host.get_fact(ManagedFile, path=dest)
    if remote["kind"] == "other" and host.get_fact(Directory, path=dest):
        raise OperationError(f"{dest} is a directory: put needs a file's path")
    if not remote["directory"]:
        yield StringCommand("mkdir", "-p", QuoteString(posixpath.dirname(dest)))
        if user or group:
            yield file_utils.chown(posixpath.dirname(dest), user, group)
    if remote["kind"] == "file" and remote["sha1"] == get_file_sha1(src):
        changed = False
        if mode and remote["mode"] != mode:
            yield file_utils.chmod(dest, mode)
            changed = True
        if (user and remote["user"] != user) or (group and remote["group"] != group):
            yield file_utils.chown(dest, user, group)
            changed = True
        if not changed:
            host.noop(f"file {dest} is already uploaded")
        return
    if state.config.DIFF:
        _show_diff(src, dest, mode, remote)
    if _private(mode):
        # Others may not read it (it may hold a secret): never, not even while it is written.
        yield from staged_replace(src, dest, user, group, str(mode).zfill(4))
        return
    yield from private_upload(src, dest)
    if user or group:
        yield file_utils.chown(dest, user, group)
    if mode:
        yield file_utils.chmod(dest, mode)


@operation()
def template(src: str, dest: str, user: str | None = None, group: str | None = None,
             mode: str | int | None = None, **data):
    """Render the Jinja2 template `src` (relative to the deploy directory) with `data` and
    put it at `dest` (see put), as pyinfra's files.template does."""
    if getattr(state, "cwd", None):
        src = os.path.join(state.cwd, src)
    for name, value in (("host", host), ("state", state), ("inventory", state.inventory)):
        data.setdefault(name, value)
    try:
        output = get_template(src).render(data)
    except (TemplateRuntimeError, TemplateSyntaxError, UndefinedError) as error:
        raise OperationError(f"Error in template {src}: {error}") from None
    yield from put._inner(src=io.StringIO(output), dest=dest, user=user, group=group, mode=mode)


def _private(mode) -> bool:
    """Whether `mode` (pyinfra's int of octal digits: 640) denies others reading."""
    return bool(mode) and int(str(mode)[-1]) & 4 == 0


def _show_diff(src, dest, mode, remote) -> None:
    if _private(mode):
        host.log(f"Will {'modify' if remote['kind'] else 'create'} "
                 f"{format_text(dest, bold=True)} (mode {mode}: content not shown)", logger.info)
        return
    host.log(f"Will {'modify' if remote['kind'] else 'create'} {format_text(dest, bold=True)}",
             logger.info)
    try:
        with get_file_io(src, "r") as wanted:
            desired = wanted.readlines()
    except UnicodeDecodeError:  # a binary (uv, the wheels' tar): as pyinfra's put says
        logger.info("  binary file: content not shown")
        logger.info("")
        return
    current = host.get_fact(FileContents, path=dest) if remote["kind"] == "file" else None
    for line in generate_color_diff([line + "\n" for line in current or []], desired):
        logger.info("  %s", line)
    logger.info("")
