"""The benchmark suite's own arithmetic and packet helpers (the scenarios themselves run in bench/run)."""

import struct

import pytest

from bench.common import evaluate, percentile, table
from bench.storm_protocols import boot_item, dhcp_packet, dhcp_parse, fill


def row(ours, peer, higher=True, target=None):
    r = {"scenario": "s", "metric": "m", "unit": "u", "ours": ours, "peer_name": "p", "peer": peer,
         "higher_is_better": higher}
    if target:
        r["target"] = target
    return r


@pytest.mark.parametrize("values,pct,expected", [([1, 2, 3, 4], 50, 2.5), ([5], 99, 5), ([1, 2, 3, 4, 5], 100, 5),
                                                 (list(range(101)), 99, 99), ([3, 1, 2], 0, 1)])
def test_percentile_interpolates_between_ranks(values, pct, expected):
    assert percentile(values, pct) == pytest.approx(expected)


@pytest.mark.parametrize("r,ratio,met", [
    (row([6, 7, 8], [10, 10, 10], True, {"ratio": 0.6}), 0.7, "yes"),
    (row([5, 5, 5], [10, 10, 10], True, {"ratio": 0.6}), 0.5, "**no**"),
    (row([14], [10], False, {"ratio": 1.3}), 1.4, "**no**"),
    (row([12], [10], False, {"ratio": 1.3}), 1.2, "yes"),
    (row([2500], [], True, {"min": 2000}), None, "yes"),
    (row([25], [], False, {"max": 20}), None, "**no**"),
    (row([0], [0], False, {"exactly": 0}), None, "yes"),
    (row([1], [0], False, {"exactly": 0}), None, "**no**"),
    (row([1], [2]), 0.5, "-"),
])
def test_evaluate_ratio_and_target(r, ratio, met):
    got_ratio, _, got_met = evaluate(r)
    assert got_met == met
    assert got_ratio == (pytest.approx(ratio) if ratio is not None else None)


def test_table_has_one_line_per_row_and_failures():
    text = table([row([1, 2, 3], [2, 2, 2], True, {"ratio": 0.8}), {"scenario": "x", "error": "exited 1"}])
    lines = text.splitlines()
    assert len(lines) == 4
    assert "1 / 2 / 3" in lines[2] and "1.00×" in lines[2] and "≥ 0.8× p" in lines[2]
    assert "(failed)" in lines[3] and "exited 1" in lines[3]


def test_dhcp_packet_round_trip_and_boot_item():
    mac = bytes.fromhex("525401000102")
    packet = dhcp_packet(1, 0x1234, mac, extra=[(77, b"iPXE")])
    parsed = dhcp_parse(packet)
    assert parsed["xid"] == 0x1234 and parsed["chaddr"] == mac
    assert parsed["options"][53] == b"\x01" and parsed["options"][77] == b"iPXE"
    assert struct.unpack("!H", parsed["options"][93]) == (7,)
    # a dnsmasq-style offer: option 43 with a boot menu (43.9) whose first item is type 0x8007
    offer = {"options": {43: bytes([6, 1, 8, 9, 7, 0x80, 0x07, 4]) + b"ipxe" + b"\xff"}}
    assert boot_item(offer) == [(43, bytes([71, 4, 0x80, 0x07, 0, 0, 255]))]
    assert boot_item({"options": {}}) == []


def test_ipxe_variables_are_filled_like_ipxe():
    assert fill("/ipxe?mac=${net0/mac}&serial=${serial:uristring}", {"net0/mac": "52:54:00:00:00:01"}) == \
        "/ipxe?mac=52:54:00:00:00:01&serial="
