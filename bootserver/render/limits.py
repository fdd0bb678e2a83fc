"""Limits on one template render, so a careless template cannot hang or flood the server.

A template is trusted text but may still loop for ever (nested `range` loops) or produce a gigabyte
(`"x" * 10**9`, a width of a billion). Three guards, each raising LimitExceeded:

* wall time: a watchdog thread interrupts a render at its deadline (see _Watchdog);
* output size: the rendered text is counted as it streams out;
* amplifiers: `*`, `**`, `%`, and the str methods and filters that pad, repeat or replace are
  checked before they run, because one such call can allocate a gigabyte before any output exists.
"""

from __future__ import annotations

import ctypes
import re
import threading
import time
from typing import Any, Iterable

import jinja2
import jinja2.filters
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_SECONDS = 5.0
MAX_OUTPUT = 8 << 20  # characters
_WIDE = re.compile(r"%[-+ #0]*(\*|\d{7,})|\{[^{}]*:[^{}]*(\{|\d{7,})")  # printf/format widths of millions


class LimitExceeded(Exception):
    pass


def _too_big(size: int, what: str) -> None:
    if size > MAX_OUTPUT:
        raise LimitExceeded(f"{what} would make {size} characters, more than the {MAX_OUTPUT} a render may produce")


def check_str_call(text: str, name: str, args: tuple, kwargs: dict) -> None:
    """Refuse a str method call whose result would exceed the output limit."""
    if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
        _too_big(args[0], f"str.{name}({args[0]})")
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            _too_big(len(text) + text.count("\t") * size, "str.expandtabs")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        hits = len(text) + 1 if args[0] == "" else text.count(args[0])
        _too_big(len(text) + hits * max(0, len(args[1]) - len(args[0])), "str.replace")
    elif name in ("format", "format_map") and _WIDE.search(text):
        raise LimitExceeded("a format width of a million or more (or a computed width) is not allowed")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with the amplifying operators and calls checked first."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters.update(center=_center, format=_format, replace=_replace)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and not isinstance(times, bool):
                    _too_big(len(seq) * times, "a repetition")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * abs(left).bit_length() > 1 << 16:
                raise LimitExceeded(f"{left} ** {right} is too large a number")
        elif operator == "%" and isinstance(left, str) and _WIDE.search(left):
            raise LimitExceeded("a format width of a million or more (or a computed width) is not allowed")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        target = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str):
            check_str_call(owner, getattr(target, "__name__", ""), args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _center(value: Any, width: int = 80) -> str:
    _too_big(width, f"center({width})")
    return jinja2.filters.do_center(value, width)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    if _WIDE.search(str(value)):
        raise LimitExceeded("a format width of a million or more (or a computed width) is not allowed")
    return jinja2.filters.do_format(value, *args, **kwargs)


@jinja2.pass_eval_context
def _replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    check_str_call(str(s), "replace", (str(old), str(new)), {})
    return jinja2.filters.do_replace(eval_ctx, s, old, new, count)


class RenderTimeout(LimitExceeded):
    """Raised inside the rendering thread by the watchdog (an exception class, without arguments)."""


class _Watchdog:
    """One daemon thread that interrupts renders past their deadline with RenderTimeout.

    Costs nothing while a template runs (unlike a trace function, which made loops 5x slower): the
    exception is delivered asynchronously (PyThreadState_SetAsyncExc) at the thread's next bytecode.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[object, tuple[float, int]] = {}  # token -> (deadline, thread id)
        self._fired: set[object] = set()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> object:
        token = object()
        with self._cond:
            self._due[token] = (time.monotonic() + seconds, threading.get_ident())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="render-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return token

    def disarm(self, token: object) -> None:
        with self._cond:
            self._due.pop(token, None)
            if token in self._fired:  # fired but perhaps not delivered yet: never let it land elsewhere
                self._fired.discard(token)
                _async_raise(threading.get_ident(), None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, (deadline, thread_id) in list(self._due.items()):
                    if now >= deadline:
                        del self._due[token]
                        self._fired.add(token)
                        _async_raise(thread_id, RenderTimeout)
                waits = [deadline - now for deadline, _ in self._due.values()]
                self._cond.wait(max(0.0, min(waits)) if waits else None)


def _async_raise(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


_WATCHDOG = _Watchdog()


def bounded(chunks: Iterable[str], seconds: float = MAX_SECONDS, max_output: int = MAX_OUTPUT) -> str:
    """Join a template's output, stopping it past `seconds` or `max_output` characters."""
    token = _WATCHDOG.arm(seconds)
    try:
        out, size = [], 0
        for chunk in chunks:
            size += len(chunk)
            if size > max_output:
                raise LimitExceeded(f"the output is larger than {max_output} characters")
            out.append(chunk)
        return "".join(out)
    except RenderTimeout as exc:  # keep its traceback: it says which template line was running
        exc.args = (f"rendering took more than {seconds:g} s (a loop that does not end?)",)
        raise
    finally:
        _WATCHDOG.disarm(token)
