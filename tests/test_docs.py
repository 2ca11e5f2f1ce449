"""The documentation site's machinery, without building it (``scripts/docs`` builds it strict in ``.ci/run``).

Every nav page exists or is generated, no generated page is committed, the reference generators
(docs/hooks/reference.py) cover every operation, setting, close code and command, and CI builds the site.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("m2s_docs_reference", ROOT / "docs" / "hooks" / "reference.py")
reference = importlib.util.module_from_spec(_spec)
sys.modules.setdefault(_spec.name, reference)
_spec.loader.exec_module(reference)


def _config() -> dict:
    # mkdocs.yml uses no Python tags: the plain YAML loader reads it.
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def _nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [p for item in node for p in _nav_pages(item)]
    if isinstance(node, dict):
        return [p for value in node.values() for p in _nav_pages(value)]
    return []


def test_every_nav_page_exists_or_is_generated():
    config = _config()
    pages = _nav_pages(config["nav"])
    assert len(pages) == len(set(pages))
    missing = [p for p in pages if p not in reference.PAGES and not (ROOT / "docs" / p).is_file()]
    assert missing == []
    assert set(reference.PAGES) <= set(pages), "a generated page is not in the nav"


def test_generated_pages_are_not_committed():
    assert [p for p in reference.PAGES if (ROOT / "docs" / p).exists()] == []


def test_the_build_is_strict_and_ci_runs_it():
    assert _config()["strict"] is True
    assert "docs/hooks/reference.py" in _config()["hooks"]
    script = (ROOT / "scripts" / "docs").read_text(encoding="utf-8")
    assert "scripts/bootstrap dev,train" in script and "mkdocs build --strict" in script
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert "scripts/docs" in ci and ci.index("scripts/docs") > ci.index("scripts/test")
    assert "/site/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_rest_page_has_every_operation_and_schema():
    spec = reference.openapi_schema()
    page = reference.rest_page(spec)
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert f"### `{method.upper()} {path}` {{#{op['operationId']}}}" in page
            for code in op["responses"]:
                assert f"| `{code}` |" in page
    for name in spec["components"]["schemas"]:
        assert f"{{#schema-{name}}}" in page
    assert "| `401` |" in page  # rendered with a token configured


def test_settings_page_has_every_field():
    from service.cli import env_name, setting_flags
    from service.config import Settings

    page = reference.settings_page()
    for name, flag in setting_flags().items():
        assert f"| `{env_name(name)}` | `{flag}` |" in page
    assert len(Settings.model_fields) == len(setting_flags())
    assert str(ROOT) not in page  # defaults in words, not this machine's paths


def test_websocket_page_has_every_close_code():
    from service.api.routes import ws

    page = reference.websocket_page()
    for name, value in vars(ws).items():
        if name.startswith("CLOSE_"):
            assert f"| `{name}` | `{value}` |" in page
            assert f"| {value} |" in page  # in the docstring's table too


def test_cli_page_has_every_script_and_command():
    page = reference.cli_page()
    scripts = reference.console_scripts()
    assert set(scripts) == {"m2s", "m2s-serve", "m2s-train", "m2s-features-demo"}

    def walk(parser: argparse.ArgumentParser, prog: str):
        yield prog
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{prog} {name}")

    for name, target in scripts.items():
        module = importlib.import_module(target.split(":")[0])
        for prog in walk(module.build_parser(), name):
            assert f"`{prog}` {{#{reference._anchor(prog)}}}" in page


def test_python_pages_document_every_module():
    page = reference.python_page("signals")
    assert "::: signals.streaming" in page and "::: signals\n" in page
    assert reference.python_page("clients.sdk").startswith("# `clients.sdk`")


def test_restructured_text_is_converted_or_refused():
    text = reference.rst_to_markdown(
        """Intro ``code`` and :class:`~a.b.C`::

            literal block

        ====  =======
        4401  first
              more
        1001  second
        ====  =======
        """
    )
    assert "Intro `code` and `C`:" in text
    assert "```\nliteral block\n```" in text
    assert "| 4401 | first more |" in text and "| 1001 | second |" in text
    with pytest.raises(reference.GenerationError):
        reference.rst_to_markdown("Text\n\n.. note:: unsupported directive")
    assert re.search(r"&lt;b&gt;", reference.inline("a <b> c"))
