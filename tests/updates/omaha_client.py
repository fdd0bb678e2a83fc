"""An Omaha client that speaks like Flatcar's update_engine, for tests.

Requests are built as flatcar/update_engine builds them (src/update_engine/omaha_request_action.cc:
GetRequestXml, GetAppXml, GetAppBody): an XML declaration, <request protocol="3.0" version=...
updaterversion=... installsource=... ismachine="1">, <os version platform sp>, and one <app> with
appid, version, track, bootid, oem, oemversion, alephversion, machineid, machinealias, lang, board,
hardware_class, delta_okay attributes holding a <ping active="1">, an <updatecheck> and, on the
first check after a reboot, <event eventtype="3" eventresult="2" previousversion=...>; or, for an
event request, only <event eventtype eventresult [errorcode]>.

Responses are checked as OmahaRequestAction::ParseResponse does: /response/app/updatecheck must
exist with a status; "noupdate" ends it; "ok" needs a manifest, urls/url with a non-empty codebase,
the first manifest/packages/package with a non-empty name and a size > 0, and an
actions/action[@event="postinstall"] with a non-empty sha256. The payload URL is the codebase with
a "/" added if missing, then the package name. The download is then checked as update_engine's
download action and OmahaResponseHandlerAction do: size, and the SHA-256 (base64) of the bytes,
plus the package's SHA-1 `hash` that Nebraska sends.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

import aiohttp

APPID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"
UPDATE_COMPLETE, DOWNLOAD_STARTED, DOWNLOAD_FINISHED = 3, 13, 14
ERROR, SUCCESS, SUCCESS_REBOOT = 0, 1, 2


@dataclass
class Node:
    """One update_engine: what /etc/machine-id, update.conf and /usr/share/flatcar/release say."""

    machine_id: str
    version: str = "4081.2.0"
    track: str = "stable"
    board: str = "amd64-usr"
    oem: str = ""
    boot_id: str = "{8e4d5a0e-0000-4000-8000-000000000001}"
    previous_version: str = "0.0.0.0"  # kPrefsPreviousVersion; "0.0.0.0" after a fresh install
    just_booted: bool = True  # the first check after boot carries the update-complete event
    local_addr: str | None = None  # the address this node talks from (its own loopback alias in tests)


def app_xml(node: Node, body: str) -> str:
    attrs = [("appid", APPID), ("version", node.version), ("track", node.track), ("bootid", node.boot_id),
             ("oem", node.oem), ("oemversion", ""), ("alephversion", node.version), ("machineid", node.machine_id),
             ("machinealias", ""), ("lang", "en-US"), ("board", node.board), ("hardware_class", ""),
             ("delta_okay", "false")]
    return ("    <app " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs) + " >\n" + body + "    </app>\n")


def request_xml(node: Node, event: tuple[int, int, int | None] | None = None) -> bytes:
    if event is None:
        body = '        <ping active="1"></ping>\n        <updatecheck></updatecheck>\n'
        if node.just_booted:
            body += (f'        <event eventtype="{UPDATE_COMPLETE}" eventresult="{SUCCESS_REBOOT}" '
                     f'previousversion={quoteattr(node.previous_version)}></event>\n')
    else:
        kind, result, code = event
        error = f' errorcode="{code}"' if result != SUCCESS else ""
        body = f'        <event eventtype="{kind}" eventresult="{result}"{error}></event>\n'
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" '
            'installsource="scheduler" ismachine="1">\n'
            f'    <os version="Chateau" platform="CoreOS" sp="{node.version}_x86_64"></os>\n'
            + app_xml(node, body) + "</request>\n").encode()


class ResponseInvalid(AssertionError):
    """update_engine's kActionCodeOmahaResponseInvalid: it would not act on this answer."""


@dataclass
class Offer:
    version: str
    urls: list[str]
    size: int
    sha256_b64: str
    sha1_b64: str
    extras: list[dict[str, str]] = field(default_factory=list)


def parse_response(body: bytes) -> Offer | None:
    """None for noupdate; the offer for ok; ResponseInvalid for anything update_engine refuses."""
    doc = ET.fromstring(body)  # update_engine: xmlParseMemory; the answer comes from bootserver under test
    if doc.tag != "response":
        raise ResponseInvalid(f"root is {doc.tag}")
    check = doc.find("app/updatecheck")
    if check is None or "status" not in check.attrib:
        raise ResponseInvalid("no /response/app/updatecheck with a status")
    if check.get("status") == "noupdate":
        return None
    if check.get("status") != "ok":
        raise ResponseInvalid(f"unknown status {check.get('status')}")
    manifest = check.find("manifest")
    if manifest is None:
        raise ResponseInvalid("no manifest")
    codebases = [url.get("codebase", "") for url in check.findall("urls/url")]
    if not codebases or any(not c for c in codebases):
        raise ResponseInvalid("missing or empty url codebase")
    packages = manifest.findall("packages/package")
    if not packages or not packages[0].get("name"):
        raise ResponseInvalid("no package name")
    first = packages[0]
    try:
        size = int(first.get("size", "0"))
    except ValueError:
        size = 0
    if size <= 0:
        raise ResponseInvalid("payload size <= 0")
    action = next((a for a in manifest.findall("actions/action") if a.get("event") == "postinstall"), None)
    if action is None or not action.get("sha256"):
        raise ResponseInvalid("no postinstall action with a sha256")
    urls = [(c if c.endswith("/") else c + "/") + first.get("name") for c in codebases]
    return Offer(manifest.get("version", ""), urls, size, action.get("sha256"), first.get("hash", ""),
                 [dict(p.attrib) for p in packages[1:]])


async def post(session: aiohttp.ClientSession, server: str, body: bytes) -> tuple[int, bytes]:
    async with session.post(server, data=body, headers={"Content-Type": "text/xml"}) as response:
        return response.status, await response.read()


async def check_for_update(session: aiohttp.ClientSession, server: str, node: Node) -> Offer | None:
    status, body = await post(session, server, request_xml(node))
    assert status == 200, body
    node.just_booted = False
    return parse_response(body)


async def send_event(session: aiohttp.ClientSession, server: str, node: Node, kind: int, result: int = SUCCESS,
                     code: int | None = None) -> None:
    status, body = await post(session, server, request_xml(node, (kind, result, code)))
    assert status == 200, body  # events are best effort, but bootserver must accept them


async def download_and_verify(session: aiohttp.ClientSession, offer: Offer) -> bytes:
    """Fetch the payload from the first URL and check it as update_engine does; returns it."""
    assert offer.urls[0].startswith("http://")  # a redirect to another scheme would fail
    async with session.get(offer.urls[0], allow_redirects=False) as response:
        assert response.status == 200, response.status
        data = await response.read()
    assert len(data) == offer.size, "size mismatch (kActionCodeDownloadSizeMismatchError)"
    assert base64.b64encode(hashlib.sha256(data).digest()).decode() == offer.sha256_b64, "SHA-256 mismatch"
    assert base64.b64encode(hashlib.sha1(data).digest()).decode() == offer.sha1_b64, "SHA-1 mismatch"
    return data


def reboot_into(node: Node, version: str) -> None:
    """What the node looks like after rebooting into the new partition."""
    node.previous_version, node.version, node.just_booted = node.version, version, True
