"""--diff and operations/files.py put: a file others may not read is named, never printed; a
public one is shown as pyinfra shows it."""

import logging
from io import BytesIO, StringIO

from pyinfra.context import ctx_host, ctx_state

from operations.files import put
from tests.unit.test_fixtures import FakeHost, FakeState

DEST = "/opt/airflow/airflow.cfg"


class DiffHost(FakeHost):
    def __init__(self, facts):
        super().__init__("somehost", facts)
        self.logged = []

    def log(self, message, log_func=None):
        self.logged.append(message)


def changed_file(mode):
    return {"files.ManagedFile": {f"path={DEST}": {
        "directory": True, "kind": "file", "user": "root", "group": "airflow", "mode": mode,
        "sha1": "0" * 40}},
        "files.FileContents": {f"path={DEST}": ["fernet_key = old-secret"]}}


def diff_of(mode, caplog):
    host, state = DiffHost(changed_file(int(mode))), FakeState()
    state.config.DIFF = True
    with ctx_state.use(state), ctx_host.use(host), caplog.at_level(logging.INFO):
        commands = list(put._inner(src=StringIO("fernet_key = new-secret\n"), dest=DEST,
                                   user="root", group="airflow", mode=mode))
    assert commands, "the changed file is uploaded"
    return " ".join(host.logged) + caplog.text


def test_a_file_others_cannot_read_is_named_not_printed(caplog):
    said = diff_of("0640", caplog)
    assert DEST in said and "content not shown" in said
    assert "secret" not in said


def test_a_public_file_is_shown(caplog):
    said = diff_of("0644", caplog)
    assert "old-secret" in said and "new-secret" in said


def test_a_binary_file_is_named_not_decoded(caplog):
    """The uv binary and the wheels' tar are put too: --diff says so instead of failing on
    bytes that are not text (found by a cold deploy with -vvv --diff)."""
    host, state = DiffHost(changed_file(0o755)), FakeState()
    state.config.DIFF = True
    with ctx_state.use(state), ctx_host.use(host), caplog.at_level(logging.INFO):
        commands = list(put._inner(src=BytesIO(b"\x7fELF\xa8\x00\xff binary"), dest=DEST,
                                   user="root", group="airflow", mode="0755"))
    assert commands, "the changed file is uploaded"
    said = " ".join(host.logged) + caplog.text
    assert DEST in said and "binary file: content not shown" in said
