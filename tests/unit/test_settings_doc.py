"""Every group_data setting is documented, and the README's table is the current one."""

import subprocess
import sys
from pathlib import Path

from ops.settings_doc import documented_settings, markdown_table

PROJECT = Path(__file__).resolve().parents[2]


def test_every_setting_has_a_comment():
    rows = documented_settings(PROJECT / "group_data")
    assert len(rows) > 20
    undocumented = [(file, name) for file, name, _, description in rows if not description]
    assert undocumented == []


def test_readme_table_is_up_to_date():
    table = markdown_table(documented_settings(PROJECT / "group_data"))
    readme = (PROJECT / "README.md").read_text()
    start, end = "<!-- settings:start -->\n", "\n<!-- settings:end -->"
    assert start in readme and end in readme
    current = readme.split(start, 1)[1].split(end, 1)[0]
    assert current == table, "regenerate it: python -m ops settings"


def test_ops_settings_prints_the_table():
    out = subprocess.run(
        [sys.executable, "-m", "ops", "settings"], cwd=PROJECT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "| all.py | `redis_port` | `6379` |" in out.stdout
