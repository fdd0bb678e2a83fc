"""A profile's Jinja2-templated Butane file -> an Ignition config: the template pipeline.

Jinja2 (sandboxed, strict) renders the template with the machine's context, Butane translates the
result, and the Ignition config passes bootserver's structural check (inside the translation)
before anyone sees it. Any failure is one `RenderError` naming the template file and line.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import butane, jinja
from .errors import RenderError, RenderWarning
from .metrics import RENDER_SECONDS, RENDERS


def render_ignition(template_path: Path, context: dict, files_dir: Path, strict: bool = False
                    ) -> tuple[dict, list[RenderWarning]]:
    """Render the Jinja2-templated Butane file at `template_path` into a checked Ignition config."""
    started = time.perf_counter()
    try:
        result = _render(template_path, context, files_dir, strict)
    except RenderError:
        RENDERS.labels("error").inc()
        raise
    RENDERS.labels("ok").inc()
    RENDER_SECONDS.observe(time.perf_counter() - started)
    return result


def _render(template_path: Path, context: dict, files_dir: Path, strict: bool) -> tuple[dict, list[RenderWarning]]:
    try:
        text = jinja.render_file(template_path, context)
    except jinja.TemplateError as exc:
        raise RenderError(exc.file, exc.line, exc.message) from None
    try:
        result = butane.translate(text, files_dir=str(files_dir) if files_dir else None, strict=strict)
    except butane.ButaneError as exc:
        entries = exc.report.entries
        first = exc.report.errors[0] if exc.report.errors else entries[0]
        file, line = _TemplateLines(template_path, context).of(first.line)
        message = f"{first.kind} at {butane.path_string(first.path)}: {first.message}"
        if first.line is not None:
            message += f" (line {first.line} of the rendered document)"
        if len(entries) > 1:
            message += f" (and {len(entries) - 1} more)"
        raise RenderError(file, line, message, entries) from None
    lines = _TemplateLines(template_path, context)
    warnings = [RenderWarning(*lines.of(e.line), butane.path_string(e.path), e.message) for e in result.report.entries]
    return result.config, warnings


class _TemplateLines:
    """Maps lines of the rendered document to template lines; renders again only when first asked."""

    def __init__(self, template_path: Path, context: dict):
        self.template_path, self.context = template_path, context
        self.origins: list[tuple[str, int]] | None = None

    def of(self, rendered_line: int | None) -> tuple[str, int | None]:
        if rendered_line is None:
            return str(self.template_path), None
        if self.origins is None:
            self.origins = jinja.line_origins(self.template_path, self.context)
        if 0 < rendered_line <= len(self.origins):
            return self.origins[rendered_line - 1]
        return str(self.template_path), rendered_line
