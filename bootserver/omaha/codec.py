"""Omaha 3.0 requests from update_engine in, responses it accepts out. Pure: bytes <-> dataclasses.

Shapes follow flatcar/update_engine (src/update_engine/omaha_request_action.cc: GetAppXml builds the
request, ParseResponse/ParsePackage/ParseParams read the answer) and flatcar/nebraska
(backend/pkg/omaha/omaha.go: what a Flatcar update server answers). Requests are parsed with
defusedxml and no DTD at all, so entity expansion and external entities are refused before they
cost anything; the caller bounds the body's size.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import defusedxml
import defusedxml.ElementTree as SafeET

from bootserver.boot.updates import Release

FLATCAR_APPID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"
MAX_APPS = 8
MAX_EVENTS = 16
MAX_ATTRIBUTE = 256  # longer attribute values are cut: they only go to logs and the timeline


class MalformedRequest(ValueError):
    """Not an Omaha 3.0 request bootserver can answer; the message says why (sent with a 400)."""


@dataclass(frozen=True)
class OmahaEvent:
    type: int
    result: int
    error_code: int | None = None
    previous_version: str | None = None


@dataclass(frozen=True)
class OmahaApp:
    appid: str
    version: str
    track: str
    board: str
    machine_id: str
    boot_id: str = ""
    oem: str = ""
    ping: bool = False
    update_check: bool = False
    events: tuple[OmahaEvent, ...] = ()

    @property
    def is_flatcar(self) -> bool:
        return self.appid.lower().strip("{}") == FLATCAR_APPID.strip("{}")

    @property
    def arch(self) -> str | None:
        """amd64 / arm64 from update_engine's board ("amd64-usr"), None for another board."""
        arch = self.board.removesuffix("-usr")
        return arch if arch in ("amd64", "arm64") else None


@dataclass(frozen=True)
class OmahaRequest:
    apps: tuple[OmahaApp, ...]
    install_source: str = ""


@dataclass(frozen=True)
class AppAnswer:
    """What to tell one app: an offer of `release` at `codebase`, or noupdate (release None)."""

    app: OmahaApp
    release: Release | None = None
    codebase: str = ""
    status: str = "ok"  # the app's status: ok, or error-unknownApplication for apps bootserver does not serve


def parse_request(body: bytes) -> OmahaRequest:
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise MalformedRequest(f"refused XML: {type(exc).__name__} (no DTDs or entities here)") from None
    except (ET.ParseError, ValueError) as exc:
        raise MalformedRequest(f"not well-formed XML: {exc}") from None
    if root.tag != "request":
        raise MalformedRequest(f"root element is <{root.tag[:40]}>, not <request>")
    if root.get("protocol") != "3.0":
        raise MalformedRequest(f"protocol {root.get('protocol')!r} is not 3.0")
    apps = root.findall("app")
    if not apps:
        raise MalformedRequest("no <app> element")
    if len(apps) > MAX_APPS:
        raise MalformedRequest(f"{len(apps)} <app> elements; at most {MAX_APPS}")
    return OmahaRequest(tuple(_app(app) for app in apps), _attr(root, "installsource"))


def _attr(element: ET.Element, name: str) -> str:
    """The attribute, cut to MAX_ATTRIBUTE, with control characters (a `&#10;` would forge log lines)
    replaced by '?'."""
    return "".join(c if c.isprintable() else "?" for c in (element.get(name) or "")[:MAX_ATTRIBUTE])


def _int(element: ET.Element, name: str, required: bool) -> int | None:
    raw = element.get(name)
    if raw is None and not required:
        return None
    try:
        value = int(raw or "")
    except ValueError:
        raise MalformedRequest(f"<event {name}={(raw or '')[:20]!r}>: not a number") from None
    if not -2**31 <= value < 2**31:
        raise MalformedRequest(f"<event {name}={value}>: out of range")
    return value


def _app(element: ET.Element) -> OmahaApp:
    appid = _attr(element, "appid")
    if not appid:
        raise MalformedRequest("<app> without appid")
    if not element.get("machineid"):
        raise MalformedRequest(f"<app appid={appid[:40]!r}> without machineid (update_engine sends /etc/machine-id)")
    events = element.findall("event")
    if len(events) > MAX_EVENTS:
        raise MalformedRequest(f"{len(events)} <event> elements in one app; at most {MAX_EVENTS}")
    return OmahaApp(
        appid=appid, version=_attr(element, "version"), track=_attr(element, "track"),
        board=_attr(element, "board"), machine_id=_attr(element, "machineid"), boot_id=_attr(element, "bootid"),
        oem=_attr(element, "oem"), ping=element.find("ping") is not None,
        update_check=element.find("updatecheck") is not None,
        events=tuple(OmahaEvent(_int(e, "eventtype", True), _int(e, "eventresult", True),
                                _int(e, "errorcode", False), _attr(e, "previousversion") or None)
                     for e in events))


def build_response(answers: list[AppAnswer], elapsed_seconds: int = 0) -> bytes:
    """The <response> update_engine parses: per app its events and ping acknowledged and, when it
    asked, an updatecheck that is `noupdate` or `ok` with urls, manifest, packages and the
    postinstall action carrying the payload's SHA-256."""
    root = ET.Element("response", protocol="3.0", server="bootserver")
    ET.SubElement(root, "daystart", elapsed_seconds=str(elapsed_seconds))
    for answer in answers:
        app = ET.SubElement(root, "app", appid=answer.app.appid, status=answer.status)
        for _ in answer.app.events:
            ET.SubElement(app, "event", status="ok")
        if answer.app.ping:
            ET.SubElement(app, "ping", status="ok")
        if answer.app.update_check:
            _update_check(app, answer)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True, short_empty_elements=False)


def _update_check(app: ET.Element, answer: AppAnswer) -> None:
    release = answer.release
    if answer.status != "ok":
        ET.SubElement(app, "updatecheck", status=answer.status)
        return
    if release is None:
        ET.SubElement(app, "updatecheck", status="noupdate")
        return
    check = ET.SubElement(app, "updatecheck", status="ok")
    urls = ET.SubElement(check, "urls")
    ET.SubElement(urls, "url", codebase=answer.codebase)
    manifest = ET.SubElement(check, "manifest", version=release.version)
    packages = ET.SubElement(manifest, "packages")
    payload = release.payload
    ET.SubElement(packages, "package", name=payload.name, hash=payload.sha1_b64, size=str(payload.size),
                  required="true")
    for extra in release.extras:
        ET.SubElement(packages, "package", name=extra.name, hash=extra.sha1_b64, hash_sha256=extra.sha256_hex,
                      size=str(extra.size), required="false")
    actions = ET.SubElement(manifest, "actions")
    ET.SubElement(actions, "action", event="postinstall", sha256=payload.sha256_b64, DisablePayloadBackoff="true")
