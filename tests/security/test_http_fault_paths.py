"""Issue 19 item 7: hostile requests get a defined 4xx, never a 500 with a traceback."""

from __future__ import annotations

import re
import socket

import pytest

MAC = "52:54:00:00:00:01"


@pytest.fixture
def server(serve, catalog_dir, tmp_path):
    assets = tmp_path / "assets"
    (assets / "os").mkdir(parents=True)
    (assets / "os" / "vmlinuz").write_bytes(b"k" * 1000)
    return serve("--catalog", str(catalog_dir), "--state", "memory://", "--assets", str(assets))


def raw(server, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send exactly these bytes (no client library fixing them up); return (status, whole answer)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    found = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    assert found, data[:200]
    return int(found.group(1)), data


def token_of(server) -> str:
    _status, answer = raw(server, f"GET /ipxe?mac={MAC} HTTP/1.1\nHost: x\nConnection: close\n")
    return re.search(rb"token=([A-Za-z0-9_%-]+)", answer).group(1).decode()


def event(server, body: bytes, token: str, extra: str = "") -> int:
    head = (f"POST /api/v1/machines/{MAC}/events?token={token} HTTP/1.1\nHost: x\nConnection: close\n"
            f"Content-Type: application/json\nContent-Length: {len(body)}\n{extra}")
    return raw(server, head, body)[0]


def get(server, target: str, headers: str = "Host: x\n") -> int:
    return raw(server, f"GET {target} HTTP/1.1\n{headers}Connection: close\n")[0]


def test_a_path_component_over_255_bytes_is_404(server):
    assert get(server, "/assets/os/" + "a" * 300) == 404
    assert get(server, "/assets/" + "a" * 300 + "/vmlinuz") == 404


def test_range_with_5000_digits_and_unicode_digits(server):
    assert get(server, "/assets/os/vmlinuz", "Host: x\nRange: bytes=0-" + "9" * 5000 + "\n") == 206
    assert get(server, "/assets/os/vmlinuz", "Host: x\nRange: bytes=" + "9" * 5000 + "-\n") == 416
    # Arabic-Indic and fullwidth digits are not digits in HTTP (RFC 9110 DIGIT is ASCII): the range is ignored
    for digits in ("\u0661\u0662", "\uff11\uff12"):
        status, answer = raw(server, "GET /assets/os/vmlinuz HTTP/1.1\nHost: x\nConnection: close\n"
                             "Range: bytes=0-" + digits.encode().decode("latin-1") + "\n")
        assert status == 200 and answer.endswith(b"k" * 1000)


def test_a_host_header_with_a_space_is_400(server):
    for target in ("/boot.ipxe", f"/ipxe?mac={MAC}", f"/ignition?mac={MAC}"):  # these write the Host into URLs
        assert get(server, target, "Host: a b\n") == 400, target
    assert get(server, f"/metadata?mac={MAC}", "Host: a b\n") == 200  # uses no URL: nothing to refuse


def test_deep_or_huge_event_json_is_400(server):
    token = token_of(server)
    assert event(server, b"[" * 30000 + b"]" * 30000, token) == 400
    assert event(server, b'{"event": "progress", "detail": ' + b"1" * 50000 + b"}", token) == 400
    assert event(server, b'{"event": "progress", "detail": ' + b"[" * 20000 + b"]" * 20000 + b"}", token) == 400


def test_a_10_mb_event_body_is_413(server):
    token = token_of(server)
    assert event(server, b'{"event": "progress", "detail": "' + b"x" * (10 << 20) + b'"}', token) == 413


def test_no_traceback_in_the_log(server):
    test_a_path_component_over_255_bytes_is_404(server)
    test_range_with_5000_digits_and_unicode_digits(server)
    test_a_host_header_with_a_space_is_400(server)
    test_deep_or_huge_event_json_is_400(server)
    assert "Traceback" not in server.log()


def test_a_10_mb_chunked_event_body_is_413(server):
    token = token_of(server)
    payload = b'{"event": "progress", "detail": "' + b"x" * (10 << 20) + b'"}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 65536]), payload[i:i + 65536])
                      for i in range(0, len(payload), 65536)) + b"0\r\n\r\n"
    head = (f"POST /api/v1/machines/{MAC}/events?token={token} HTTP/1.1\nHost: x\nConnection: close\n"
            "Content-Type: application/json\nTransfer-Encoding: chunked\n")
    assert raw(server, head, chunks)[0] == 413


def test_percent_0a_in_a_path_does_not_forge_a_log_line(server):
    get(server, "/assets/x%0a2026-01-01%2000:00:00,000%20INFO%20bootserver:%20FORGED")
    get(server, "/nothing%0d%0aFORGED2%e2%80%a8FORGED3")
    server.wait_log(r"FORGED3")
    for line in server.log().splitlines():
        assert not line.startswith(("2026-01-01", "FORGED")) and "\u2028" not in line, line
