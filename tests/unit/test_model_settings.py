"""The settings schema covers every name the project ships and pyinfra reads."""

import ast
import runpy
from pathlib import Path

import pytest
from pyinfra.api.arguments import all_argument_meta
from pyinfra.connectors.ssh import connector_data_meta

from cluster.settings import SETTINGS, check_setting

REPO = Path(__file__).resolve().parents[2]
GROUP_DATA_FILES = sorted((REPO / "group_data").glob("*.py"))


def defined_names(path: Path) -> list[str]:
    """Module-level names a group_data file assigns (what pyinfra turns into data)."""
    names = []
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names += [t.id for t in targets if isinstance(t, ast.Name) and not t.id.startswith("__")]
    return names


def test_group_data_files_are_found():
    assert REPO / "group_data" / "all.py" in GROUP_DATA_FILES


@pytest.mark.parametrize("path", GROUP_DATA_FILES, ids=lambda p: p.name)
def test_every_shipped_setting_is_in_the_schema(path):
    unknown = [name for name in defined_names(path) if name not in SETTINGS]
    assert not unknown, f"{path.name}: add {unknown} to cluster/settings.py SETTINGS"


@pytest.mark.parametrize("path", GROUP_DATA_FILES, ids=lambda p: p.name)
def test_every_shipped_default_passes_its_check(path):
    for name, value in runpy.run_path(str(path)).items():
        if not name.startswith("__"):
            assert check_setting(name, value) is None, (path.name, name, value)


def test_every_setting_has_a_check_and_a_one_line_description():
    for name, setting in SETTINGS.items():
        assert callable(setting.check), name
        assert setting.description and "\n" not in setting.description, name


def test_pyinfra_ssh_connector_and_global_argument_names_are_known():
    assert set(connector_data_meta) <= set(SETTINGS)
    assert {name for name in all_argument_meta if name.startswith("_")} <= set(SETTINGS)


@pytest.mark.parametrize("name, value, fragment", [
    ("redis_prot", 1, "unknown setting 'redis_prot' (did you mean 'redis_port'?)"),
    ("redis_port", "6379", "expected a port number"),
    ("redis_port", 0, "expected a port number"),
    ("ssh_allow_agent", "no", "expected True or False"),
    ("lb_vip", "10.0.0.256", "expected None or an IP address"),
    ("ssh_strict_host_key_checking", "maybe", "expected one of"),
    ("external_database_url", "postgresql://u:secret@h/db", "must not contain a password"),
])
def test_check_rejects(name, value, fragment):
    problem = check_setting(name, value)
    assert problem and fragment in problem


def test_password_settings_are_not_echoed():
    assert "hunter2" not in check_setting("external_database_url", "postgresql://u:hunter2@h/d")
    assert "424242" not in check_setting("ssh_password", 424242)
