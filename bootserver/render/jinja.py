"""The sandboxed Jinja2 environment Butane templates are rendered in.

Templates are trusted (operators write them); the values they interpolate (machine metadata, request
data) are not. So:

* the environment is sandboxed (no attribute access to internals) and undefined variables are errors;
* a value written without a quoting filter may not contain a line break or control character, nor be
  a list or mapping: such a value could add YAML keys or shell lines. Quote it with `tojson` (YAML),
  `shell_quote` (shell) or write a list with `tojson`;
* every error names the template file and line;
* a render is bounded in time and output size (render/limits.py), and `{% include %}` cannot follow
  a symlink out of the template folder.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import jinja2
import jinja2.meta

from bootserver.render.limits import BoundedSandbox, LimitExceeded, bounded

#: line breaks of every kind (YAML and Unicode also break lines at U+0085, U+2028, U+2029) and controls
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


class TemplateError(Exception):
    """A template could not be rendered: names the file and (when known) the line."""

    def __init__(self, file: str | Path, line: int | None, message: str):
        self.file = str(file)
        self.line = line
        self.message = message
        super().__init__(f"{self.file}:{line}: {message}" if line else f"{self.file}: {message}")


class SafeText(str):
    """Text a quoting filter produced: written as it is."""


class UnsafeValue(ValueError):
    pass


def _finalize(value: Any) -> Any:
    if isinstance(value, SafeText):
        return value
    if value is None:
        raise UnsafeValue("a null value cannot be written as text; use | tojson, or | default(...)")
    if isinstance(value, (dict, list, tuple)):
        raise UnsafeValue(f"a {type(value).__name__} cannot be written as text; use | tojson")
    text = str(value)
    bad = _CONTROL.search(text)
    if bad:
        raise UnsafeValue(f"value {text[:60]!r} contains {bad.group()!r} (a line break or control character); "
                          "quote it with | tojson")
    return value


def tojson(value: Any, indent: int | None = None) -> SafeText:
    """JSON, which is also YAML: a double-quoted string, a flow list or mapping, a number, a bool."""
    return SafeText(json.dumps(value, ensure_ascii=True, indent=indent))


def yaml_quote(value: Any) -> SafeText:
    """Any value as a YAML double-quoted string (numbers and booleans become strings)."""
    return tojson("" if value is None else str(value))


def shell_quote(value: Any) -> SafeText:
    """One shell word, single-quoted where needed; line breaks and control characters are refused."""
    text = str(value)
    bad = _CONTROL.search(text)
    if bad:
        raise UnsafeValue(f"value {text[:60]!r} contains {bad.group()!r}, which cannot be put in a shell line")
    return SafeText(shlex.quote(text))


def with_query(url: str, **params: Any) -> str:
    """The URL with query parameters added (`urls.ignition | with_query(stage="final")`)."""
    parts = urlsplit(str(url))
    extra = urlencode({k: str(v) for k, v in params.items()})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    """Jinja's indent; the result stays safe only if what was indented was safe."""
    out = jinja2.filters.do_indent(str(value), width, first, blank)
    return SafeText(out) if isinstance(value, SafeText) else out


FILTERS = {"tojson": tojson, "yaml_quote": yaml_quote, "shell_quote": shell_quote, "with_query": with_query,
           "indent": indent}

_ENVIRONMENTS: dict[str, jinja2.Environment] = {}


class ConfinedLoader(jinja2.FileSystemLoader):
    """Templates from one folder, where a symlink may not lead outside it (as Butane's `local:`)."""

    def get_source(self, environment: jinja2.Environment, template: str):
        source, filename, uptodate = super().get_source(environment, template)
        root = os.path.realpath(self.searchpath[0])
        if os.path.commonpath([root, os.path.realpath(filename)]) != root:
            raise jinja2.exceptions.SecurityError(f"{template!r} is a symlink that leads outside {root}")
        return source, filename, uptodate


def environment(search_dir: str | Path) -> jinja2.Environment:
    """One sandboxed environment per template folder; compiled templates are cached (reloaded on change)."""
    key = os.path.abspath(search_dir)
    env = _ENVIRONMENTS.get(key)
    if env is None:
        env = BoundedSandbox(
            loader=ConfinedLoader(key),
            undefined=jinja2.StrictUndefined,
            finalize=_finalize,
            autoescape=False,
            keep_trailing_newline=True,
            auto_reload=True,
        )
        env.filters.update(FILTERS)
        _ENVIRONMENTS[key] = env
    return env


def used_names(path: str | Path) -> frozenset[str] | None:
    """The context variables a template (with the templates it includes) can read; None when an
    include is computed at run time, so anything may be read. Keys the render cache."""
    path = Path(path)
    env = environment(path.parent)
    names: set[str] = set()
    seen: set[str] = set()
    pending = [path.name]
    try:
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            source, _filename, _uptodate = env.loader.get_source(env, name)
            tree = env.parse(source)
            names |= jinja2.meta.find_undeclared_variables(tree)
            for included in jinja2.meta.find_referenced_templates(tree):
                if included is None:
                    return None
                pending.append(included)
    except jinja2.TemplateError:
        return None  # the render itself will report it
    return frozenset(names)


def render_file(path: str | Path, context: dict[str, Any]) -> str:
    """Render the template file at `path`; includes are looked up beside it. Raises TemplateError."""
    path = Path(path)
    env = environment(path.parent)
    try:
        template = env.get_template(path.name)
        return bounded(template.generate(context))
    except LimitExceeded as exc:
        file, line = _template_frame(exc, path)
        raise TemplateError(file, line, f"render limit: {exc}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.filename or path, exc.lineno, f"template syntax error: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        file, line = _template_frame(exc, path)
        raise TemplateError(file, line, f"template not found: {exc.name}") from None
    except jinja2.UndefinedError as exc:
        file, line = _template_frame(exc, path)
        raise TemplateError(file, line, f"undefined variable: {exc.message}") from None
    except jinja2.exceptions.SecurityError as exc:
        file, line = _template_frame(exc, path)
        raise TemplateError(file, line, f"not allowed in a template: {exc}") from None
    except UnsafeValue as exc:
        file, line = _template_frame(exc, path)
        raise TemplateError(file, line, str(exc)) from None
    except Exception as exc:  # a filter or expression failed at run time
        file, line = _template_frame(exc, path)
        raise TemplateError(file, line, f"{type(exc).__name__}: {exc}") from None


def line_origins(path: str | Path, context: dict[str, Any]) -> list[tuple[str, int]]:
    """For each line of the rendered output, the template file and line it came from.

    Used to point Butane errors (which know lines of the rendered document) back at the template.
    The template is rendered again chunk by chunk: a static chunk is found in its template's source
    (so its lines map exactly); a value written by an expression maps to the expression's line.
    """
    path = Path(path)
    generator = environment(path.parent).get_template(path.name).generate(context)
    sources: dict[str, str] = {}
    cursors: dict[str, int] = {}
    origins: list[tuple[str, int]] = []
    line_open = False
    for chunk in generator:
        frame = generator
        while getattr(frame, "gi_yieldfrom", None) is not None and hasattr(frame.gi_yieldfrom, "gi_frame"):
            frame = frame.gi_yieldfrom
        code = frame.gi_frame
        file = code.f_code.co_filename
        expression_line = _debug_line(code)
        start = None
        if chunk in code.f_code.co_consts:  # template text, not a computed value
            if file not in sources:
                sources[file] = Path(file).read_text(encoding="utf-8") if os.path.isfile(file) else ""
            at = sources[file].find(chunk, cursors.get(file, 0))
            at = at if at >= 0 else sources[file].find(chunk)
            if at >= 0:
                start = sources[file].count("\n", 0, at) + 1
                cursors[file] = at + len(chunk)
            else:  # text Jinja folded together with constant expressions: starts at its node's line
                start = expression_line
        for index, part in enumerate(chunk.split("\n")):
            if index > 0:
                line_open = False
            if not line_open and (part or index < chunk.count("\n")):
                origins.append((file, start + index if start is not None else expression_line))
                line_open = True
    return origins


def _debug_line(frame) -> int:
    """The template line of the code a compiled template is executing (Jinja's debug_info)."""
    line = 1
    for pair in frame.f_globals.get("debug_info", "").split("&"):
        if pair:
            template_line, code_line = map(int, pair.split("="))
            if code_line <= frame.f_lineno:
                line = template_line
    return line


def _template_frame(exc: BaseException, default: Path) -> tuple[str, int | None]:
    """The innermost template file and line in the traceback (Jinja maps template frames to them)."""
    found: tuple[str, int | None] = (str(default), None)
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py") and not filename.startswith("<") and os.path.isfile(filename):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found
