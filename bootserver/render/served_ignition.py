"""A profile's Ignition config as served bytes: a ready JSON file, or its Butane template rendered.

Renders are cached per machine and catalog generation (see `render_cache.RenderCache`), because
Flatcar and installers often fetch the same config twice in a row. Either way the config passes the
structural check of the Ignition spec (`ignition_check`) before it is served.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pathlib import Path

from bootserver.catalog.model import Catalog, Profile
from bootserver.render import butane, ignition_check, jinja
from bootserver.render.butane_template import render_ignition
from bootserver.render.errors import RenderError
from bootserver.render.render_cache import RenderCache

CACHE = RenderCache(size=4096)


def _key(profile: Profile, context: dict[str, Any], catalog: Catalog) -> tuple:
    return CACHE.key(context.get("machine", {}).get("mac", ""), catalog.generation,
                     deciding(profile, context, catalog.generation), extra=profile.name)


def cached_config(profile: Profile, context: dict[str, Any], catalog: Catalog) -> bytes | None:
    """The config from the cache, or None: cheap enough for the event loop."""
    return CACHE.get(_key(profile, context, catalog))


def config_bytes(profile: Profile, context: dict[str, Any], catalog: Catalog) -> bytes:
    """The compact JSON the machine is served; raises RenderError naming the file (and line) at fault.
    A cold render reads files and runs Butane: callers on the event loop run it in a thread."""
    return CACHE.get_or_render(_key(profile, context, catalog), lambda: _render(profile, context, catalog))


def deciding(profile: Profile, context: dict[str, Any], generation: Any) -> dict[str, Any]:
    """The part of the context that decides the config: none for a ready JSON file, else the
    variables the template reads (query labels and the Host matter only if it reads them)."""
    spec = profile.ignition
    if spec.config is not None:
        return {}
    names = _used_names(str(spec.butane), generation)
    return context if names is None else {k: v for k, v in context.items() if k in names}


@functools.lru_cache(maxsize=256)
def _used_names(template: str, generation: Any) -> frozenset[str] | None:
    """Parsed once per catalog generation (any edit under the catalog makes a new one)."""
    return jinja.used_names(template)


def _render(profile: Profile, context: dict[str, Any], catalog: Catalog) -> bytes:
    spec = profile.ignition
    if spec.config is not None:
        try:
            data = json.loads(spec.config.read_text())
        except (OSError, ValueError) as exc:
            raise RenderError(spec.config, None, f"not a readable Ignition JSON file: {exc}") from None
        config = check_config(data, spec.config)
    else:
        config, _warnings = render_ignition(spec.butane, context, files_dir=catalog.root)
    return json.dumps(config, separators=(",", ":")).encode()


def check_config(config: Any, source: str | Path) -> dict:
    """A ready Ignition JSON config must pass the same structural check before it is served."""
    if not isinstance(config, dict):
        raise RenderError(source, None, "an Ignition config must be a JSON object")
    report = ignition_check.check(config)
    if report.fatal:
        first = report.errors[0]
        raise RenderError(source, None, f"error at {butane.path_string(first.path)}: {first.message}",
                          report.entries)
    return config


def profile_for_stage(profile: Profile, stage: str, catalog: Catalog) -> Profile:
    """`stage=final` is what an installer writes to disk: the Ignition of the profile's final_profile.
    Raises ValueError for an unknown stage, LookupError when the profile has no final_profile."""
    if not stage:
        return profile
    if stage != "final":
        raise ValueError(f"unknown stage {stage!r} (the only stage is 'final')")
    if not profile.final_profile:
        raise LookupError(f"profile {profile.name} has no final_profile")
    return catalog.profiles[profile.final_profile]
