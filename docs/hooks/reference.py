"""MkDocs hook (mkdocs.yml, ``hooks``): the reference pages generated from the code at every build.

- ``reference/rest.md``: the OpenAPI schema of ``service.app.create_app(...)``, every operation with its
  parameters, request body, answers (errors included) and every schema, rendered to Markdown here (static
  HTML, nothing fetched when the page is viewed);
- ``reference/websocket.md``: the docstring of ``service.api.routes.ws`` (messages, close codes) and its
  ``CLOSE_*``/``REASON_*`` constants; a close code the docstring does not list fails the build;
- ``reference/settings.md``: ``service.config.Settings.model_fields`` with each variable, flag, type,
  default and description;
- ``reference/cli.md``: the argparse parser of every console script in pyproject.toml's
  ``[project.scripts]`` (each script's module must have ``build_parser()``), every sub-command.

Nothing generated is committed: the pages exist only in the built site, so they cannot drift from the
code. The few reStructuredText constructs the docstrings use (``code``, roles, ``::`` literal blocks,
simple tables) are converted; anything else that looks like reStructuredText fails the build instead of
rendering as junk. Standard library and the project only; ``tests/test_docs.py`` runs the generators.
"""

from __future__ import annotations

import argparse
import html
import inspect
import json
import os
import re
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parents[2]
GENERATED_NOTE = (
    '!!! info "Generated"\n    This page is generated from the code when the site is built '
    "(`docs/hooks/reference.py`): {source}.\n"
)


# --------------------------------------------------------------------------------------------- text


class GenerationError(RuntimeError):
    """Raised when the code cannot be rendered faithfully (the build fails with this message)."""


_CODE = re.compile(r"(``.+?``|`[^`]+`)")
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc|const):`~?([^`]+)`")


def inline(text: str) -> str:
    """reStructuredText or plain text (one paragraph) to Markdown inline text: code spans kept, roles
    made code, everything else escaped (``<name>`` shows as text, ``*`` and ``|`` are literal)."""
    text = _ROLE.sub(lambda m: "``" + m[1].split(".")[-1] + "``", text)
    out = []
    for i, part in enumerate(_CODE.split(text)):
        if i % 2:
            code = part.strip("`")
            out.append(f"`` {code} ``" if "`" in code else f"`{code}`")
        else:
            part = html.escape(part, quote=False)
            out.append(re.sub(r"([\\*_\[\]|])", r"\\\1", part))
    return "".join(out)


def cell(text: Any) -> str:
    """One table cell: inline text on one line."""
    return inline(" ".join(str(text).split())) if text not in (None, "") else ""


def rst_to_markdown(doc: str) -> str:
    """The reStructuredText subset of this project's docstrings to Markdown: paragraphs, bullet lists,
    ``::`` literal blocks and simple tables (``====  ====``)."""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(inline(" ".join(s.strip() for s in para)))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            flush()
            out.append("")
            i += 1
        elif re.fullmatch(r"=+( +=+)+", line.strip()):  # a simple table
            flush()
            border = line.rstrip()
            starts = [m.start() for m in re.finditer(r"=+", border)]
            rows: list[list[str]] = []
            i += 1
            while i < len(lines) and lines[i].strip() != border.strip():
                if not lines[i].strip():
                    raise GenerationError("blank line inside a simple table; not supported")
                cols = [lines[i][a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
                if cols[0] or not rows:
                    rows.append(cols)
                else:  # continuation of the row above
                    rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cols, strict=True)]
                i += 1
            if i == len(lines):
                raise GenerationError("a simple table is not closed by its border line")
            i += 1
            out += [
                "",
                "| " + " | ".join(["Value", "Meaning"][: len(starts)] + [""] * (len(starts) - 2)) + " |",
            ]
            out.append("|" + "---|" * len(starts))
            out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
            out.append("")
        elif (
            i + 1 < len(lines) and line.strip() and re.fullmatch(r"(-{3,}|={3,}|~{3,})", lines[i + 1].strip())
        ):
            flush()  # a section title (numpydoc "Parameters\n----------")
            out += ["", f"**{inline(line.strip())}**", ""]
            i += 2
        elif line.lstrip().startswith(("- ", "* ")):  # a bullet item and its indented continuation
            flush()
            indent = len(line) - len(line.lstrip()) + 2
            item = [line.strip()[2:]]
            i += 1
            while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) >= indent:
                item.append(lines[i].strip())
                i += 1
            out.append("- " + inline(" ".join(item)))
        else:
            if re.match(r"\s*(\.\. |:\w+:)", line) and not _ROLE.match(line.strip()):
                raise GenerationError(f"reStructuredText the reference generator does not render: {line!r}")
            para.append(line)
            i += 1
            if line.rstrip().endswith("::"):  # a literal block follows
                para[-1] = line.rstrip()[:-1] if not line.rstrip().endswith(" ::") else line.rstrip()[:-3]
                flush()
                while i < len(lines) and not lines[i].strip():
                    i += 1
                block = []
                while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                    block.append(lines[i])
                    i += 1
                out += ["", "```", textwrap.dedent("\n".join(block)).strip("\n"), "```", ""]
    flush()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; cells are already Markdown."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def type_name(annotation: Any) -> str:
    """A readable type: ``list[AttachRequest]``, ``Path | None``, ``int``."""
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    text = str(annotation).replace("typing.", "")
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text).replace("NoneType", "None")


@contextmanager
def clean_environment() -> Iterator[None]:
    """No ``M2S_*`` variable of the building machine leaks into the generated pages, and argparse wraps
    usage lines at 100 columns whatever the terminal."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("M2S_") or k == "COLUMNS"}
    for key in saved:
        del os.environ[key]
    os.environ["COLUMNS"] = "100"
    try:
        yield
    finally:
        del os.environ["COLUMNS"]
        os.environ.update(saved)


# --------------------------------------------------------------------------------------------- REST


def _schema_anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def schema_type(schema: dict, link: Callable[[str], str]) -> str:
    """A JSON schema in words, Markdown: ``integer``, ``array of [EmotionState](#...)``, ``string or null``."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return link(name)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            joiner = " and " if key == "allOf" else " or "
            return joiner.join(schema_type(s, link) for s in schema[key])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        if "prefixItems" in schema:
            inner = ", ".join(schema_type(s, link) for s in schema["prefixItems"])
            return f"array [{inner}]"
        items = schema.get("items")
        return "array of " + (schema_type(items, link) if items else "any")
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "object of " + schema_type(schema["additionalProperties"], link)
    text = kind or "any"
    if schema.get("format"):
        text += f" ({schema['format']})"
    return text


_CONSTRAINTS = {
    "minimum": "≥ {}",
    "exclusiveMinimum": "> {}",
    "maximum": "≤ {}",
    "exclusiveMaximum": "< {}",
    "minLength": "length ≥ {}",
    "maxLength": "length ≤ {}",
    "minItems": "items ≥ {}",
    "maxItems": "items ≤ {}",
    "pattern": "pattern `{}`",
}


def constraints(schema: dict) -> str:
    """Bounds, lengths and patterns of a schema (and of the branches of its ``anyOf``)."""
    found = [fmt.format(schema[k]) for k, fmt in _CONSTRAINTS.items() if k in schema]
    for branch in schema.get("anyOf", []):
        found += [fmt.format(branch[k]) for k, fmt in _CONSTRAINTS.items() if k in branch]
    return "; ".join(found)


def openapi_schema() -> dict:
    """The service's OpenAPI schema, with a bearer token configured so that every 401 answer is listed."""
    from service.app import create_app
    from service.config import Settings

    with clean_environment():
        return create_app(Settings(api_token="documentation-token-" + "x" * 16)).openapi()


def rest_page(spec: dict | None = None) -> str:
    """``reference/rest.md``: every operation and every schema of the OpenAPI document."""
    spec = openapi_schema() if spec is None else spec
    schemas = spec.get("components", {}).get("schemas", {})
    schemes = spec.get("components", {}).get("securitySchemes", {})

    def link(name: str) -> str:
        if name not in schemas:
            raise GenerationError(f"the OpenAPI schema refers to {name!r}, which it does not define")
        return f"[{name}](#{_schema_anchor(name)})"

    info = spec["info"]
    out = [
        "# REST API\n",
        GENERATED_NOTE.format(source="the OpenAPI schema of `service.app.create_app()`"),
        f"**{inline(info['title'])} {inline(info['version'])}** (OpenAPI {spec['openapi']}). "
        + inline(info.get("summary", "")),
        "",
        "The running service serves the same schema at `/openapi.json` and interactive documentation at "
        "`/docs`. Operations marked *bearer token* answer `401` only when a token is configured "
        "(`M2S_API_TOKEN`, `--token`); every error answer is an [ErrorPublic]"
        f"(#{_schema_anchor('ErrorPublic')}) object. The WebSocket `/ws` is described in "
        "[WebSocket](websocket.md).",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict]]] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options"}:
                by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    out.append("## Operations\n")
    out.append(
        table(
            ["Operation", "Summary"],
            [
                [f"[`{m.upper()} {p}`](#{o['operationId']})", cell(o.get("summary", ""))]
                for ops in by_tag.values()
                for m, p, o in ops
            ],
        )
    )
    for tag, ops in by_tag.items():
        out.append(f"## {tag.capitalize()}\n")
        for method, path, op in ops:
            out.append(f"### `{method.upper()} {path}` {{#{op['operationId']}}}\n")
            if op.get("summary"):
                out.append(f"**{inline(op['summary'])}**\n")
            if op.get("description"):
                out.append(rst_to_markdown(op["description"]))
            if op.get("security"):
                names = [n for req in op["security"] for n in req]
                kinds = [schemes.get(n, {}).get("scheme", n) for n in names]
                out.append(
                    "Authentication: "
                    + ", ".join(f"{k} token" for k in kinds)
                    + " (`Authorization: Bearer <token>`) when `M2S_API_TOKEN` is set.\n"
                )
            params = op.get("parameters", [])
            if params:
                out.append("**Parameters**\n")
                out.append(
                    table(
                        ["Name", "In", "Type", "Required", "Description"],
                        [
                            [
                                f"`{p['name']}`",
                                p["in"],
                                schema_type(p.get("schema", {}), link),
                                "yes" if p.get("required") else "no",
                                cell(p.get("description") or p.get("schema", {}).get("description", "")),
                            ]
                            for p in params
                        ],
                    )
                )
            body = op.get("requestBody")
            if body:
                required = "required" if body.get("required") else "optional"
                for ctype, content in body.get("content", {}).items():
                    out.append(
                        f"**Request body** ({required}, `{ctype}`): "
                        f"{schema_type(content.get('schema', {}), link)}\n"
                    )
            rows = []
            for code, answer in op.get("responses", {}).items():
                content = answer.get("content", {})
                bodies = "; ".join(
                    f"`{ctype}`" + (f" {schema_type(c['schema'], link)}" if c.get("schema") else "")
                    for ctype, c in content.items()
                )
                headers = ", ".join(
                    f"`{h}`: {cell(v.get('description', ''))}" for h, v in answer.get("headers", {}).items()
                )
                rows.append([f"`{code}`", cell(answer.get("description", "")), bodies, headers])
            out.append("**Answers**\n")
            out.append(table(["Status", "Meaning", "Body", "Headers"], rows))
    out.append("## Schemas\n")
    for name, schema in schemas.items():
        out.append(f"### {name} {{#{_schema_anchor(name)}}}\n")
        if schema.get("description"):
            out.append(rst_to_markdown(schema["description"]))
        props = schema.get("properties")
        if props:
            required = set(schema.get("required", []))
            rows = []
            for prop, sub in props.items():
                default = f"`{json.dumps(sub['default'])}`" if "default" in sub else ""
                rows.append(
                    [
                        f"`{prop}`",
                        schema_type(sub, link),
                        "yes" if prop in required else "no",
                        default,
                        cell(constraints(sub)).replace("\\`", "`") if constraints(sub) else "",
                        cell(sub.get("description", "")),
                    ]
                )
            out.append(table(["Field", "Type", "Required", "Default", "Constraints", "Description"], rows))
        else:
            out.append(f"Type: {schema_type(schema, link)}\n")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- WebSocket


def websocket_page() -> str:
    """``reference/websocket.md``: the route module's docstring, its parameters and its close codes."""
    from service.api.routes import ws
    from service.config import Settings

    doc = ws.__doc__ or ""
    codes = {k: v for k, v in vars(ws).items() if k.startswith("CLOSE_") and isinstance(v, int)}
    listed = {int(m[1]) for m in re.finditer(r"^\s*(\d{4})\s", doc, re.M)}
    missing = sorted(set(codes.values()) - listed)
    if missing:
        raise GenerationError(
            f"service.api.routes.ws closes with {missing}, which its docstring does not list"
        )
    params = inspect.signature(ws.stream_states).parameters
    query = [p for name, p in params.items() if name != "websocket"]
    limit = Settings.model_fields["max_ws_clients"].default
    reasons = {k: v for k, v in vars(ws).items() if k.startswith("REASON_") and isinstance(v, str)}
    reasons["too_many_clients_reason(limit)"] = ws.too_many_clients_reason(limit)
    reasons["unknown_stream_reason(stream_id)"] = ws.unknown_stream_reason("eeg-0000")
    out = [
        "# WebSocket\n",
        GENERATED_NOTE.format(source="the docstring and constants of `service.api.routes.ws`"),
        rst_to_markdown(doc),
        "## Query parameters\n",
        table(
            ["Name", "Type", "Default"],
            [[f"`{p.name}`", cell(str(p.annotation)), f"`{p.default!r}`"] for p in query],
        ),
        "## Close codes\n",
        table(["Constant", "Code"], [[f"`{k}`", f"`{v}`"] for k, v in codes.items()]),
        "## Close reasons\n",
        "Sent verbatim (examples with the default `M2S_MAX_WS_CLIENTS` and a stream id `eeg-0000`).\n",
        table(["Source", "Reason"], [[f"`{k}`", cell(v)] for k, v in reasons.items()]),
        "A `state` message carries an [EmotionState](rest.md#schema-EmotionState), as `POST /predict` "
        "answers it.\n",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- settings


def settings_page() -> str:
    """``reference/settings.md``: one row per field of ``service.config.Settings``."""
    from service import cli, config

    with clean_environment():
        parser = cli.build_parser()
    helps = {a.dest: a.help or "" for a in parser._actions}
    flags = cli.setting_flags()
    rows = []
    for name, field in config.Settings.model_fields.items():
        said = re.search(r"\(M2S_\w+[^;()]*; default:? (.*)\)$", helps.get(name, ""))
        if said:
            default = said[1]
        else:
            value = field.get_default(call_default_factory=True)
            default = "unset" if value in (None, [], {}) else str(value)
        rows.append(
            [
                f"`{cli.env_name(name)}`",
                f"`{flags[name]}`",
                f"`{type_name(field.annotation)}`",
                cell(default),
                cell(field.description or ""),
            ]
        )
    out = [
        "# Settings\n",
        GENERATED_NOTE.format(source="`service.config.Settings.model_fields` and the `m2s-serve` parser"),
        rst_to_markdown(config.__doc__ or ""),
        "## Fields\n",
        rst_to_markdown(config.Settings.__doc__ or ""),
        "Each flag of `m2s-serve` overrides its variable ([CLI](cli.md#m2s-serve)).\n",
        table(["Variable", "Flag", "Type", "Default", "Description"], rows),
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- CLI


def console_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml: ``{"m2s": "clients.cli:main", ...}``."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]


def _anchor(prog: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", prog.lower()).strip("-")


def _parser_section(parser: argparse.ArgumentParser, prog: str, level: int, about: str = "") -> list[str]:
    formatter = parser._get_formatter()
    out = [f"{'#' * min(level, 6)} `{prog}` {{#{_anchor(prog)}}}\n"]
    text = parser.description or about
    if text:
        out.append(inline(" ".join(text.split())) + "\n")
    first, *rest = parser.format_usage().rstrip().splitlines()
    usage = "\n".join(
        [first.removeprefix("usage: "), *(line.removeprefix(" " * len("usage: ")) for line in rest)]
    )
    out += ["```text", usage, "```", ""]
    positionals, options, commands = [], [], []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:
                    continue
                seen.add(id(sub))
                commands.append((name, sub, helps.get(name) or ""))
            continue
        invocation = formatter._format_action_invocation(action)
        help_text = formatter._expand_help(action) if action.help else ""
        default = ""
        if action.default not in (None, argparse.SUPPRESS, False, []) and "default" not in help_text:
            default = (
                f"`{action.default!r}`" if not isinstance(action.default, str) else f"`{action.default}`"
            )
        row = [f"`{invocation}`", cell(help_text), default]
        (options if action.option_strings else positionals).append(row)
    if positionals:
        out.append(table(["Argument", "Description", "Default"], positionals))
    if options:
        out.append(table(["Option", "Description", "Default"], options))
    if parser.epilog:
        out.append(inline(" ".join(parser.epilog.split())) + "\n")
    if commands:
        out.append(
            table(
                ["Command", "Description"],
                [[f"[`{name}`](#{_anchor(f'{prog} {name}')})", cell(about)] for name, _, about in commands],
            )
        )
        for name, sub, about in commands:
            out += _parser_section(sub, f"{prog} {name}", level + 1, about)
    return out


def cli_page() -> str:
    """``reference/cli.md``: every console script and every sub-command, from their argparse parsers."""
    scripts = console_scripts()
    out = [
        "# Command line\n",
        GENERATED_NOTE.format(
            source="the argparse parser (`build_parser()`) of every console script in pyproject.toml"
        ),
        table(
            ["Command", "Entry point"],
            [[f"[`{name}`](#{_anchor(name)})", f"`{target}`"] for name, target in scripts.items()],
        ),
    ]
    with clean_environment():
        for name, target in scripts.items():
            module = import_module(target.split(":")[0])
            build = getattr(module, "build_parser", None)
            if build is None:
                raise GenerationError(
                    f"{name}: {module.__name__} has no build_parser(); the CLI page needs it"
                )
            parser = build()
            if parser.prog != name:
                raise GenerationError(f"{name}: its parser's prog is {parser.prog!r}")
            out += _parser_section(parser, name, 2)
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- Python API


def modules_of(name: str) -> list[str]:
    """``name`` and, for a package, every module under it (from the files: nothing is imported)."""
    path = ROOT / name.replace(".", "/")
    if not (path / "__init__.py").is_file():
        if not path.with_suffix(".py").is_file():
            raise GenerationError(f"no module {name} under {ROOT}")
        return [name]
    found = [name]
    for file in sorted(path.rglob("*.py")):
        parts = file.relative_to(ROOT).with_suffix("").parts
        if any(p.startswith("_") for p in parts if p != "__init__") or "__pycache__" in parts:
            continue
        if not all((ROOT.joinpath(*parts[:k]) / "__init__.py").is_file() for k in range(1, len(parts))):
            continue  # a folder of scripts, not a package
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module != name:
            found.append(module)
    return found


def python_page(name: str) -> str:
    """A mkdocstrings page: the package's docstring, then each of its modules in turn (numpydoc)."""
    modules = modules_of(name)
    out = [f"# `{name}`\n"]
    out.append(f"::: {name}\n    options:\n      show_root_heading: false\n      members: false\n")
    if len(modules) == 1:
        out[-1] = f"::: {name}\n    options:\n      show_root_heading: false\n"
    for module in modules[1:]:
        out.append(f"::: {module}\n")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- hook

PAGES: dict[str, Callable[[], str]] = {
    "reference/rest.md": rest_page,
    "reference/websocket.md": websocket_page,
    "reference/settings.md": settings_page,
    "reference/cli.md": cli_page,
    "reference/python/signals.md": lambda: python_page("signals"),
    "reference/python/models-bundle.md": lambda: python_page("models.bundle"),
    "reference/python/training.md": lambda: python_page("training"),
    "reference/python/clients-sdk.md": lambda: python_page("clients.sdk"),
}


def on_files(files, config):  # noqa: ANN001 (mkdocs hook signature)
    """Add the generated pages to the site (before the nav is built, so mkdocs.yml can name them)."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    for uri, make in PAGES.items():
        if files.get_file_from_path(uri) is not None:
            raise PluginError(f"docs/{uri} is generated by docs/hooks/reference.py; delete the file")
        try:
            content = make()
        except GenerationError as err:
            raise PluginError(f"{uri}: {err}") from None
        files.append(File.generated(config, uri, content=content))
    return files
