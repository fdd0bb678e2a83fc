"""Kernel arguments: Jinja2 templates written by the operator, filled with values that are not trusted.

The template text is trusted (it is the profile). Every interpolated value is checked: anything
that could split the iPXE `kernel` line or expand inside iPXE (whitespace, quotes, `$`, braces,
backslashes, `;`, `|`, `&&`, and `#`, which starts a comment when a word begins with it) is refused with a clear error instead of reaching the script.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jinja2

from bootserver.render.limits import BoundedSandbox, LimitExceeded, bounded

UNSAFE = re.compile(r"[\s\"'`$\\{};|<>#]|&&|[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class ArgError(ValueError):
    pass


def _finalize(value: Any) -> str:
    text = "" if value is None else str(value)
    bad = UNSAFE.search(text)
    if bad:
        raise ArgError(f"value {text!r} contains {bad.group()!r}, which is not allowed in a kernel argument")
    return text


_ENV = BoundedSandbox(undefined=jinja2.StrictUndefined, finalize=_finalize, autoescape=False)


@functools.lru_cache(maxsize=1024)
def _template(source: str) -> jinja2.Template:
    """Compiling costs ~100x rendering, and profiles hold few distinct argument templates."""
    return _ENV.from_string(source)


def render_args(templates: tuple[str, ...], context: dict[str, Any]) -> list[str]:
    """Render each argument; raises ArgError naming the argument and the reason."""
    out = []
    for i, template in enumerate(templates):
        try:
            compiled = _template(template)
            text = bounded(compiled.generate(context), seconds=1.0, max_output=4096)
        except LimitExceeded as exc:
            raise ArgError(f"args[{i}] {template!r}: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise ArgError(f"args[{i}] {template!r}: {exc.message}") from None
        except ArgError as exc:
            raise ArgError(f"args[{i}] {template!r}: {exc}") from None
        except jinja2.TemplateError as exc:
            raise ArgError(f"args[{i}] {template!r}: {exc}") from None
        if len(text.splitlines()) > 1:  # \n, \r and every other line separator Python knows
            raise ArgError(f"args[{i}] {template!r}: renders to more than one line")
        words = text.split()
        if any(word.startswith("#") for word in words):
            raise ArgError(f"args[{i}] {template!r}: a word starting with '#' would comment out the rest "
                           "of the iPXE kernel line")
        out.extend(words)
    return out
