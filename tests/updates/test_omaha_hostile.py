"""Malformed and hostile Omaha requests get a plain 400 and change nothing: entity expansion,
external entities, huge bodies, non-XML, wrong documents. Checked against a real server, and
the codec alone for the cases a server test would be slow to cover."""

from __future__ import annotations

import aiohttp
import pytest

from bootserver.omaha.codec import MalformedRequest, parse_request

from .omaha_client import Node, request_xml

GOOD = request_xml(Node("e" * 32)).decode()

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE request [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<request protocol="3.0"><app appid="&lol9;" machineid="x"><updatecheck/></app></request>"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE request [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<request protocol="3.0"><app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="&secret;"
 machineid="x"><updatecheck/></app></request>"""

DTD_ONLY = '<?xml version="1.0"?><!DOCTYPE request SYSTEM "http://127.0.0.1:9/x.dtd">' + GOOD.split("?>", 1)[1]

HOSTILE = {
    "entity expansion": (BILLION_LAUGHS, "refused XML"),
    "external entity": (EXTERNAL, "refused XML"),
    "external DTD": (DTD_ONLY, "refused XML"),
    "not XML": ("this is not xml", "not well-formed XML"),
    "truncated": (GOOD[:-20], "not well-formed XML"),
    "wrong root": ('<response protocol="3.0"/>', "not <request>"),
    "old protocol": (GOOD.replace('protocol="3.0"', 'protocol="2.0"'), "is not 3.0"),
    "no app": ('<request protocol="3.0"><os/></request>', "no <app>"),
    "no machineid": (GOOD.replace('machineid="' + "e" * 32 + '"', 'machineid=""'), "without machineid"),
    "bad event number": (GOOD.replace('eventresult="2"', 'eventresult="two"'), "not a number"),
    "too many apps": ('<request protocol="3.0">' + '<app appid="a" machineid="m"/>' * 9 + "</request>",
                      "at most 8"),
    "too many events": (GOOD.replace("<updatecheck></updatecheck>",
                                     '<event eventtype="3" eventresult="1"/>' * 17), "at most 16"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_codec_refuses(name):
    body, message = HOSTILE[name]
    with pytest.raises(MalformedRequest, match=message):
        parse_request(body.encode())


def test_long_attributes_are_cut():
    app = parse_request(GOOD.replace('track="stable"', 'track="' + "x" * 5000 + '"').encode()).apps[0]
    assert len(app.track) == 256


def test_control_characters_never_reach_logs():
    forged = GOOD.replace('machineid="' + "e" * 32 + '"', 'machineid="m&#10;2026-01-01 INFO forged&#13;&#9;x"')
    app = parse_request(forged.encode()).apps[0]
    assert app.machine_id == "m?2026-01-01 INFO forged??x"


async def test_server_answers_400_and_records_nothing(serve, catalog, mirror):
    assets, _ = mirror
    server = serve("--catalog", str(catalog()), "--assets", str(assets), "--state", "memory://")
    async with aiohttp.ClientSession() as session:
        for name, (body, message) in HOSTILE.items():
            async with session.post(f"{server.url}/v1/update/", data=body.encode()) as response:
                assert response.status == 400, name
                text = await response.text()
                assert text.startswith("malformed Omaha request: ") and message in text, (name, text)
                assert "Traceback" not in text
        huge = GOOD.replace("<updatecheck></updatecheck>", "<updatecheck>" + "x" * 70_000 + "</updatecheck>")
        async with session.post(f"{server.url}/v1/update/", data=huge.encode()) as response:
            assert response.status == 400 and "over 65536 bytes" in await response.text()

        async def chunks():  # no Content-Length: the limit holds for a streamed body too
            for _ in range(100):
                yield b"<" * 1024

        async with session.post(f"{server.url}/v1/update/", data=chunks()) as response:
            assert response.status == 400 and "over 65536 bytes" in await response.text()
        async with session.get(f"{server.url}/v1/update/") as response:
            assert response.status == 405
        async with session.get(f"{server.url}/api/v1/updates") as response:
            assert (await response.json())["machines"] == []
        async with session.get(f"{server.url}/metrics") as response:
            metrics = await response.text()
    assert f'bootserver_omaha_rejected_total{{reason="malformed"}} {float(len(HOSTILE))}' in metrics
    assert 'bootserver_omaha_rejected_total{reason="too-big"} 2.0' in metrics
    assert "bootserver_update_checks_total{" not in metrics  # no request got as far as a check
    server.wait_log(r"Omaha request from 127\.0\.0\.1 refused: refused XML: DTDForbidden")
