"""Files the control machine keeps for the cluster (secrets, TLS material, the Git deploy key):
written so that no reader, crash or concurrent deploy ever sees half a file or a key readable
by others."""

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` at once: a reader (or a crash) never sees half a file. mkstemp makes
    the file 0600, so a key is never readable by others, not even for an instant."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


@contextlib.contextmanager
def locked(lock_file: Path):
    """An exclusive POSIX record lock on `lock_file` (created 0600): it excludes another
    process (a second deploy or `ops` command), not this one, which prepares its run once."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
