import pytest
from hypothesis import given, strategies as st

from bootserver.catalog.mac import MacError, normalize_mac, normalize_mac_prefix

octets = st.lists(st.integers(0, 255), min_size=6, max_size=6)


def spellings(values: list[int]) -> list[str]:
    hexes = [f"{v:02x}" for v in values]
    plain = "".join(hexes)
    return [":".join(hexes), ":".join(hexes).upper(), "-".join(hexes), "-".join(hexes).upper(),
            ".".join(plain[i:i + 4] for i in (0, 4, 8)), plain, plain.upper()]


@given(octets)
def test_every_common_spelling_normalises_to_one_form(values):
    expected = ":".join(f"{v:02x}" for v in values)
    for spelling in spellings(values):
        assert normalize_mac(spelling) == expected, spelling


@given(st.text(max_size=20))
def test_arbitrary_text_is_a_mac_or_a_clear_error(text):
    try:
        out = normalize_mac(text)
    except MacError as exc:
        assert "is not a MAC address" in str(exc)
    else:
        assert len(out) == 17 and out.count(":") == 5 and out == out.lower()


@pytest.mark.parametrize("bad", ["52:54:00:ab:cd", "52:54:00:ab:cd:ef:01", "zz:54:00:ab:cd:ef", "", "0x525400abcdef",
                                 "52:54:00:ab:cd:e", "52 54 00 ab cd ef"])
def test_invalid_macs_are_refused(bad):
    with pytest.raises(MacError):
        normalize_mac(bad)


@pytest.mark.parametrize("raw,expected", [("52:54:00", "52:54:00"), ("52-54-00", "52:54:00"), ("525400", "52:54:00"),
                                          ("5254.00", "52:54:00"), ("AA:BB", "aa:bb")])
def test_mac_prefixes(raw, expected):
    assert normalize_mac_prefix(raw) == expected


@pytest.mark.parametrize("bad", ["52:5", "5", "zz", "52:54:00:11:22:33:44"])
def test_bad_mac_prefixes(bad):
    with pytest.raises(MacError):
        normalize_mac_prefix(bad)
