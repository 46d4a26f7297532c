"""Mounts a killed run can leave under the lab dir (debootstrap mounts /proc and /sys
inside the image it builds; the containers' own mounts live in their namespaces)."""

import subprocess
from pathlib import Path


def _unescape(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        target = _unescape(line.split()[1])
        if target.startswith(prefix):  # the lab dir itself may be a mount of its own: keep it
            found.append(target)
    return found


def unmount_all_under(root: Path) -> None:
    # Deepest first; lazy, so a busy mount does not block the cleanup.
    for target in sorted(mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)
