"""`python -m ops settings`: the documented settings of group_data/, as a Markdown table.

The table is read from the files themselves (each setting's comment lines and default), so
the README's copy can be checked against them (tests/unit/test_settings_doc.py)."""

import ast
from pathlib import Path

import click


def documented_settings(group_data_dir: Path):
    """(file, name, default source, description) for every setting, in file order."""
    rows = []
    for path in sorted(group_data_dir.glob("*.py"), key=lambda p: (p.stem != "all", p.stem)):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.parse(source).body:
            if not isinstance(node, ast.Assign) or len(node.targets) != 1:
                continue
            target = node.targets[0]
            if not isinstance(target, ast.Name):
                continue
            description = _comment_above(lines, node.lineno)
            above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
            if not description and rows and rows[-1][0] == path.name and above:
                # A setting right below another shares its comment (user and group, say).
                description = f"See `{rows[-1][1]}` above."
            rows.append((path.name, target.id, _default(source, node), description))
    return rows


def _default(source, node):
    text = ast.get_source_segment(source, node.value) or ""
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


def _comment_above(lines, lineno):
    """The run of `#` lines right above a setting (lineno is 1-based)."""
    comment = []
    index = lineno - 2
    while index >= 0 and lines[index].lstrip().startswith("#"):
        text = lines[index].strip().lstrip("#").strip()
        if text.startswith("---"):
            break
        comment.insert(0, text)
        index -= 1
    return " ".join(comment)


def markdown_table(rows):
    out = ["| file | setting | default | meaning |", "|---|---|---|---|"]
    for file, name, default, description in rows:
        cell = default.replace("|", "\\|")
        out.append(f"| {file} | `{name}` | `{cell}` | {description.replace('|', '/')} |")
    return "\n".join(out)


@click.command("settings")
@click.pass_obj
def command(ops):
    """Print every group_data setting with its default and meaning (Markdown)."""
    click.echo(markdown_table(documented_settings(ops.project_dir / "group_data")))
