"""A profile's Ignition config as served bytes: a ready JSON file, or its Butane template rendered.

Renders are cached by catalog generation and template context, because Flatcar and installers
often fetch the same config twice in a row.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from bootserver.catalog.model import Catalog, Profile


class RenderError(Exception):
    """The config could not be produced; the message names the file (and line) at fault."""


_CACHE: OrderedDict[tuple, bytes] = OrderedDict()
CACHE_SIZE = 4096


def for_profile(profile: Profile, context: dict[str, Any], catalog: Catalog) -> bytes:
    key = (catalog.generation, profile.name, json.dumps(context, sort_keys=True, default=str))
    cached = _CACHE.get(key)
    if cached is not None:
        _CACHE.move_to_end(key)
        return cached
    body = _render(profile, context, catalog)
    _CACHE[key] = body
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return body


def _render(profile: Profile, context: dict[str, Any], catalog: Catalog) -> bytes:
    spec = profile.ignition
    if spec.config is not None:
        try:
            data = json.loads(spec.config.read_text())
        except (OSError, ValueError) as exc:
            raise RenderError(f"{spec.config}: not a readable Ignition JSON file: {exc}") from None
        return json.dumps(data, separators=(",", ":")).encode()
    try:
        from bootserver.render.ignition import RenderError as ButaneError, render_ignition
    except ImportError:
        raise RenderError(f"{spec.butane}: Butane rendering is not available in this build") from None
    try:
        config, _warnings = render_ignition(spec.butane, context, files_dir=catalog.root)
    except ButaneError as exc:
        raise RenderError(str(exc)) from None
    return json.dumps(config, separators=(",", ":")).encode()
