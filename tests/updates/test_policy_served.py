"""The catalog's policy as a node sees it through a real server: a pinned version, a maintenance
window, updates switched off, a catalog reload, and an app that is not Flatcar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .conftest import NEW, OLD, boot, session_from
from .test_omaha_flow import omaha_timeline
from .omaha_client import Node, app_xml, check_for_update, post

PROFILE = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: flatcar-install}
spec:
  boot: {kernel: flatcar/amd64/current/flatcar_production_pxe.vmlinuz}
  updates: %s
"""


async def served(serve, mirror, catalog, policy: str, node: Node, mac: str):
    assets, _ = mirror
    root = catalog(text=PROFILE % policy + "---\n" + """\
apiVersion: bootserver/v1
kind: Group
metadata: {name: all}
spec: {profile: flatcar-install}
""")
    server = serve("--catalog", str(root), "--assets", str(assets), "--state", "memory://")
    await boot(server.url, mac, node.local_addr)
    return server, root


async def test_pinned_version_is_offered_to_older_nodes_only(serve, mirror, catalog):
    older = Node("1" * 32, version="4000.0.0", local_addr="127.0.1.30")
    server, _ = await served(serve, mirror, catalog, f"{{version: {OLD}}}", older, "02:00:00:00:01:30")
    omaha = f"{server.url}/v1/update/"
    async with session_from(older.local_addr) as session:
        offer = await check_for_update(session, omaha, older)
        assert offer.version == OLD and offer.urls[0].endswith(f"/flatcar/amd64/{OLD}/flatcar_production_update.gz")
    newer = Node("2" * 32, version=NEW, local_addr="127.0.1.31")
    await boot(server.url, "02:00:00:00:01:31", newer.local_addr)
    async with session_from(newer.local_addr) as session:
        assert await check_for_update(session, omaha, newer) is None  # pinned below it: never a downgrade


async def test_window_and_switch_follow_the_catalog_and_its_reload(serve, mirror, catalog):
    node = Node("3" * 32, local_addr="127.0.1.32")
    later = datetime.now(UTC) + timedelta(hours=3)
    server, root = await served(serve, mirror, catalog, f"{{window: {{start: '{later:%H:00}', length: 1h}}}}", node,
                                "02:00:00:00:01:32")
    omaha = f"{server.url}/v1/update/"
    async with session_from(node.local_addr) as session:
        assert await check_for_update(session, omaha, node) is None
        (root / "profiles.yaml").write_text((root / "profiles.yaml").read_text().replace(
            f"{{window: {{start: '{later:%H:00}', length: 1h}}}}", "{enabled: false}"))
        server.wait_log(r"catalog reloaded \(file change\): generation 2", timeout=15)
        assert await check_for_update(session, omaha, node) is None
        (root / "profiles.yaml").write_text((root / "profiles.yaml").read_text().replace(
            "{enabled: false}", "{channel: stable}"))
        server.wait_log(r"catalog reloaded \(file change\): generation 3", timeout=15)
        offer = await check_for_update(session, omaha, node)
        assert offer is not None and offer.version == NEW
    timeline = await omaha_timeline(server.url, "02:00:00:00:01:32", 4)
    reasons = [e["detail"]["reason"] for e in timeline if e["kind"] == "omaha.check"]
    assert reasons[0].startswith(f"outside the maintenance window ({later:%H:00} UTC for 60 min")
    assert "updates are off for this machine" in reasons
    assert reasons[-1] == f"offer {NEW} (runs {OLD})"


async def test_other_apps_are_told_unknown_application(serve, mirror, catalog):
    node = Node("4" * 32, local_addr="127.0.1.33")
    server, _ = await served(serve, mirror, catalog, "{channel: stable}", node, "02:00:00:00:01:33")
    body = app_xml(node, "        <updatecheck></updatecheck>\n").replace(
        "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}", "{00000000-0000-0000-0000-000000000001}")
    request = f'<?xml version="1.0" encoding="UTF-8"?>\n<request protocol="3.0">\n{body}</request>\n'.encode()
    async with session_from(node.local_addr) as session:
        status, answer = await post(session, f"{server.url}/v1/update/", request)
    assert status == 200
    assert b'status="error-unknownApplication"' in answer and b"<urls>" not in answer
