"""apt's Debian sources replaced by the deploy's own (setting apt_mirror), and put back."""

from io import StringIO

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import Directory, File
from pyinfra.operations import files

SOURCES_LIST = "/etc/apt/sources.list"
# Debian 12's deb822 sources of a fresh install (absent where sources.list holds them).
DEB822 = "/etc/apt/sources.list.d/debian.sources"
# The host's own sources, kept while the deploy's are in place.
ORIGINAL_DIR = "/etc/apt/airflow-cluster-original"


@operation()
def sources(content: str | None):
    """`content` set: /etc/apt/sources.list is `content` and apt's only Debian source; the
    first time, the host's sources.list (copied) and debian.sources (moved) are kept in
    ORIGINAL_DIR. None: those put back, if kept; nothing otherwise."""
    kept = host.get_fact(Directory, path=ORIGINAL_DIR)
    if content is not None:
        if not kept:
            yield (f"mkdir -m 0755 {ORIGINAL_DIR} && "
                   f"{{ ! [ -e {SOURCES_LIST} ] || cp -p {SOURCES_LIST} {ORIGINAL_DIR}/; }}")
        if host.get_fact(File, path=DEB822):
            yield f"mv {DEB822} {ORIGINAL_DIR}/"
        yield from files.put._inner(src=StringIO(content), dest=SOURCES_LIST, user="root",
                                    group="root", mode="0644")
    elif kept:
        yield (f"if [ -e {ORIGINAL_DIR}/debian.sources ]; then "
               f"mv {ORIGINAL_DIR}/debian.sources {DEB822}; fi && "
               f"if [ -e {ORIGINAL_DIR}/sources.list ]; then "
               f"mv {ORIGINAL_DIR}/sources.list {SOURCES_LIST}; else rm -f {SOURCES_LIST}; fi && "
               f"rmdir {ORIGINAL_DIR}")
    else:
        host.noop("apt's sources are the host's own")
