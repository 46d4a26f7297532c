"""A file the deploy manages, asked about in one command (operations/files.py put, template)."""

import posixpath

from pyinfra.api import FactBase, QuoteString, StringCommand


class ManagedFile(FactBase):
    """What put/template need to know of `path`, in one command instead of pyinfra's three
    (Directory of the parent, File, Sha1File): about 2 of the 3 round trips of every
    unchanged file of a no-change run.

    {"directory": does the parent directory exist, "kind": None (absent) | "file" (a regular
    file, not a link) | "other" (a link, a directory...), and for a file "user", "group",
    "mode" (octal digits as an int, as pyinfra's File fact gives it) and "sha1"}."""

    def command(self, path):
        quoted = QuoteString(path)
        return StringCommand(
            "if", "test", "-d", QuoteString(posixpath.dirname(path) or "/"), ";", "then",
            "echo", "directory;", "fi;",
            "if", "test", "-f", quoted, "&&", "!", "test", "-L", quoted, ";", "then",
            "stat", "-c", "'file %U %G %a'", quoted, "&&", "sha1sum", "<", quoted, ";",
            "elif", "test", "-e", quoted, "||", "test", "-L", quoted, ";", "then",
            "echo", "other;", "fi",
        )

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        state = {"directory": "directory" in lines, "kind": None}
        if "other" in lines:
            state["kind"] = "other"
        for index, line in enumerate(lines):
            if line.startswith("file "):
                _, user, group, mode = line.split(" ")
                state.update(kind="file", user=user, group=group, mode=int(mode),
                             sha1=lines[index + 1].split(" ")[0])
        return state

    @staticmethod
    def default():
        return {"directory": False, "kind": None}
