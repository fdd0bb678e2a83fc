"""The answers Runtime hands out that follow from the catalog alone (matches, /ipxe scripts, Ignition
bytes), worked out once per catalog and request and then served from memory.

The machine's state is never cached: Runtime reads it per request and it selects which answer
applies (the decision's action and reason, and the token, are part of every key). A reload gives
a new catalog object, which empties the caches.
"""

from __future__ import annotations

import asyncio

from bootserver.boot import lifecycle
from bootserver.boot.matching import Match, fallback_for, match_entries, match_of
from bootserver.boot.request import BootRequest
from bootserver.catalog.model import Catalog, Profile
from bootserver.config import Settings
from bootserver.render import served_ignition
from bootserver.render.answer_cache import MISSING, AnswerCache, request_key
from bootserver.render.context import template_context
from bootserver.render.ipxe import script_for
from bootserver.render.metrics import ANSWERS, CACHE

#: Up to this many Groups, a match is worked out per request rather than kept per request: a look-up in
#: the cache costs about as much, and a flood of new MACs would fill it with one entry each.
DIRECT_MATCH_GROUPS = 16


class Answers:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._answers = AnswerCache(ANSWERS)  # matches and /ipxe scripts
        self._ignition = AnswerCache(CACHE, count_misses=False)  # in front of served_ignition's render cache
        self._matches: dict[tuple, Match] = {}  # (profile, Machine, Group names) -> their one Match
        self._matches_of: Catalog | None = None

    def match(self, catalog: Catalog, request: BootRequest) -> Match | None:
        if len(catalog.groups) <= DIRECT_MATCH_GROUPS:  # matching costs less than keeping it per request
            return self._shared_match(catalog, request)
        key = ("match", request_key(request))
        found = self._answers.get(catalog, key)
        if found is MISSING:
            found = self._answers.put(catalog, key, self._shared_match(catalog, request))
        return found

    def _shared_match(self, catalog: Catalog, request: BootRequest) -> Match | None:
        """match_for, one Match per set of entries: a flood of new MACs in one Group shares one object
        (no merge per MAC, and nothing per MAC for the garbage collector to walk)."""
        entries = match_entries(catalog, request, fallback_for(self.settings))
        if entries is None:
            return None
        if catalog is not self._matches_of:
            self._matches, self._matches_of = {}, catalog
        profile, machine, group = entries
        key = (profile.name, machine.name if machine is not None else None, group.name if group is not None else None)
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = match_of(*entries)
        return found

    def ipxe_script(self, catalog: Catalog, decision: lifecycle.BootDecision, request: BootRequest, base: str,
                    server_ip: str | None) -> str:
        """render.ipxe.script_for, kept; its ArgError or ValueError are raised, never cached."""
        token = decision.record.token if decision.record else None
        key = ("ipxe", request_key(request), decision.action, decision.reason, token, base, server_ip)
        script = self._answers.get(catalog, key)
        if script is MISSING:
            script = self._answers.put(catalog, key, script_for(decision, request, base, token, server_ip))
        return script

    async def ignition(self, catalog: Catalog, found: Match, request: BootRequest, stage: str, base: str,
                       token: str | None) -> tuple[Profile, bytes]:
        """See Runtime.ignition."""
        key = ("ignition", request_key(request), found.profile.name, stage, base, token)
        answer = self._ignition.get(catalog, key)
        if answer is not MISSING:
            return answer
        profile = served_ignition.profile_for_stage(found.profile, stage, catalog)
        if profile.ignition is None:
            raise LookupError(f"profile {profile.name} has no ignition config")
        context = template_context(found, request, base, token)
        body = served_ignition.cached_config(profile, context, catalog)
        if body is None:  # a cold render reads files and runs Butane: never on the loop DHCP and TFTP share
            body = await asyncio.to_thread(served_ignition.config_bytes, profile, context, catalog)
        return self._ignition.put(catalog, key, (profile, body))
