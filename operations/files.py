"""File operations beyond pyinfra's own: a secret-bearing config file validated on the host
before it replaces the one in use (HAProxy's config and certificate, keepalived's config:
tasks/lb.py)."""

import hashlib
import io
import shlex

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.facts.files import File, Sha1File


@operation()
def validated_file(content: str, dest: str, user: str, group: str, mode: str, check=None):
    """Install `content` at `dest` (owner, mode) when it differs from what is there.

    The new content is written beside `dest` (created with its final owner and mode, so a
    secret is never readable by others), checked with `check` ("{path}" = that file), and
    only then moved over `dest`. A failed check removes it and fails the operation; the
    installed file, and the service using it, stay as they were. Unlike files.put, it never
    prints the content (--diff): these files hold passwords and keys.
    """
    remote = host.get_fact(File, path=dest)
    digest = hashlib.sha1(content.encode()).hexdigest()
    if remote and host.get_fact(Sha1File, path=dest) == digest:
        if (remote["user"], remote["group"]) != (user, group):
            yield StringCommand("chown", f"{user}:{group}", shlex.quote(dest))
        if remote["mode"] != int(mode):
            yield StringCommand("chmod", mode, shlex.quote(dest))
        if (remote["user"], remote["group"], remote["mode"]) == (user, group, int(mode)):
            host.noop(f"{dest} is up to date")
        return
    directory, _, filename = dest.rpartition("/")
    staged = f"{directory}/.{filename}.new"
    quoted = shlex.quote(staged)
    yield StringCommand("install", "-m", mode, "-o", user, "-g", group, "/dev/null", quoted)
    yield FileUploadCommand(
        io.StringIO(content), staged, remote_temp_filename=host.get_temp_filename(staged)
    )
    if check:
        yield StringCommand(
            "(", check.format(path=quoted), ")", "||", "{", "rm", "-f", quoted, ";", "exit", "1;",
            "}",
        )
    yield StringCommand("mv", "-f", quoted, shlex.quote(dest))
