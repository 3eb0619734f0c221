"""A Sphinx directive that builds the configuration reference from the ``#:``
comments of ``flask_apitokens/config.py``, so the docs cannot drift from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

CONFIG = Path(__file__).resolve().parent.parent / "flask_apitokens" / "config.py"


def config_entries() -> list[tuple[str, str, str]]:
    """(key, default as written, description) for each key in DEFAULTS."""
    entries, comment = [], []
    for line in CONFIG.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            comment.append(stripped[2:].strip())
        elif stripped.startswith('"APITOKENS_') and comment:
            key, _, default = stripped.partition(":")
            entries.append((key.strip('"'), default.strip().rstrip(","), " ".join(comment)))
            comment = []
        elif comment and not stripped.startswith("#"):
            comment = []
    return entries


class ConfigReference(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        for key, default, text in config_entries():
            lines += [f".. data:: {key}", "", f"   Default: ``{default}``", "", f"   {text}", ""]
        container = nodes.section()
        self.state.nested_parse(StringList(lines, source=str(CONFIG)), self.content_offset, container)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("apitokens-config", ConfigReference)
    return {"parallel_read_safe": True}
