"""http.common.boot_request keeps what it parsed: the same query from the same client is the same
(immutable) BootRequest, the MAC still reaches the access log, and a bad MAC is refused every time."""

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bootserver.boot.request import Stage
from bootserver.http import common


def asking(path: str, peer: str = "10.0.0.5") -> web.Request:
    class Transport:
        def get_extra_info(self, name, default=None):
            return {"peername": (peer, 40000), "sockname": ("10.0.0.1", 8080)}.get(name, default)

    return make_mocked_request("GET", path, transport=Transport())


def test_the_same_query_is_parsed_once_and_still_noted_for_the_log(monkeypatch):
    monkeypatch.setattr(common, "_REQUESTS", {})
    first = common.boot_request(asking("/ipxe?mac=52-54-00-00-00-01&arch=x86_64&platform=efi&rack=r1"), Stage.IPXE)
    again = asking("/ipxe?mac=52-54-00-00-00-01&arch=x86_64&platform=efi&rack=r1")
    assert common.boot_request(again, Stage.IPXE) is first and again[common.MAC] == "52:54:00:00:00:01"
    assert (first.mac, first.arch, first.client_ip, dict(first.labels)) == (
        "52:54:00:00:00:01", "x86_64-efi", "10.0.0.5", {"rack": "r1"})
    other_client = common.boot_request(asking("/ipxe?mac=52-54-00-00-00-01&arch=x86_64&platform=efi&rack=r1",
                                              peer="10.0.0.6"), Stage.IPXE)
    assert other_client is not first and other_client.client_ip == "10.0.0.6"
    assert common.boot_request(asking("/ignition?mac=52-54-00-00-00-01&arch=x86_64&platform=efi&rack=r1"),
                               Stage.OS).stage is Stage.OS


def test_a_bad_mac_is_refused_every_time_and_the_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(common, "_REQUESTS", {})
    monkeypatch.setattr(common, "REQUESTS_KEPT", 4)
    for _ in range(2):
        with pytest.raises(web.HTTPBadRequest):
            common.boot_request(asking("/ipxe?mac=nope"), Stage.IPXE)
    for n in range(10):
        common.boot_request(asking(f"/ipxe?mac=52:54:00:00:00:{n:02x}"), Stage.IPXE)
    assert 0 < len(common._REQUESTS) <= 4
