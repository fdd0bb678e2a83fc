"""The board in a real browser (headless Chromium via Selenium): it loads, a machine booting through
real DHCP/TFTP/HTTP requests appears and advances live without a reload, its timeline shows the
steps in order, a broken catalog edit shows on the health page with file:line, and a reinstall is
refused without the admin token and works with it."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.board.browser import ADMIN_TOKEN, NEIGHBOURS, board_lab, chromium

pytestmark = [pytest.mark.netns]
SCREENSHOTS = os.environ.get("BOARD_SCREENSHOTS")  # a folder (docs/) to save the README's pictures into


def wait(driver, check, what: str, timeout: float = 15.0):
    """Poll the page (not the server) until `check(driver)` is truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check(driver)
            if last:
                return last
        except Exception as exc:  # the element is being replaced by a live update
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{driver.page_source[:3000]}")


def row_text(driver, mac: str) -> str:
    return driver.find_element("id", f"m-{mac}").text


def test_board_follows_a_machine_booting_over_dhcp_tftp_http(tmp_path: Path):
    with board_lab(tmp_path) as (lab, discover), chromium(lab.link.server_ns) as driver:
        mac = lab.mac
        # TFTP listens where the docs say (tftp: auto with --dhcp), and the log says so
        assert "tftp: listening on 0.0.0.0:69 (every interface; tftp: ADDRESS:PORT limits it)" in lab.log.read_text()
        driver.get(lab.board("/ui/"))
        assert "Fleet" in driver.title
        wait(driver, lambda d: "on" in d.find_element("id", "live").get_attribute("class"), "the live stream")
        assert not driver.find_elements("id", f"m-{mac}")
        driver.execute_script("window.noReload = 'still the same page';")

        offer = lab.dhcp(discover)  # the firmware's DISCOVER: the proxy offers the UEFI loader over TFTP
        loader = offer.file.rstrip(b"\0").decode()
        assert loader == "ipxe.efi"
        wait(driver, lambda d: "proxy offer" in row_text(d, mac), "the machine to appear after DHCP")
        assert "rack1-node1" in row_text(driver, mac) and "ready" in row_text(driver, mac)

        lab.curl("-o", str(tmp_path / "loader"), f"tftp://{offer.siaddr}/{loader}")
        assert (tmp_path / "loader").stat().st_size == Path("/usr/lib/ipxe/ipxe.efi").stat().st_size
        wait(driver, lambda d: "loader over TFTP" in row_text(d, mac), "the TFTP step")

        assert lab.curl(f"{lab.server}/boot.ipxe").startswith("#!ipxe")
        script = lab.curl(f"{lab.server}/ipxe?mac={mac}&arch=x86_64&platform=efi")
        token = re.search(r"token=([\w-]+)", script).group(1)
        wait(driver, lambda d: "iPXE script" in row_text(d, mac), "the iPXE step")
        lab.curl("-o", "/dev/null", f"{lab.server}/assets/os/vmlinuz?mac={mac}")
        lab.curl("-o", "/dev/null", f"{lab.server}/ignition?mac={mac}")
        wait(driver, lambda d: "installing" in row_text(d, mac), "installing after the kernel and Ignition")
        lab.curl("-X", "POST", "-H", "Content-Type: application/json", "--data", json.dumps({"event": "installed"}),
                 f"{lab.server}/api/v1/machines/{mac}/events?token={token}")
        wait(driver, lambda d: "installed" in d.find_element("id", f"m-{mac}").get_attribute("data-state"),
             "installed after the installer's report")
        assert driver.execute_script("return window.noReload") == "still the same page"
        assert driver.find_element("id", "count-installed").text == "1"

        lab.curl(f"{lab.server}/ipxe?mac=52:54:00:aa:bb:cc&arch=x86_64&platform=efi")  # an unknown machine
        wait(driver, lambda d: "discovered" in row_text(d, "52:54:00:aa:bb:cc"), "a discovered machine")
        for (_name, other), steps in zip(NEIGHBOURS, (1, 2, 3)):  # ready, installing, failed
            script = lab.curl(f"{lab.server}/ipxe?mac={other}&arch=x86_64&platform=efi")
            if steps > 1:
                lab.curl("-o", "/dev/null", f"{lab.server}/ignition?mac={other}")
            if steps > 2:
                other_token = re.search(r"token=([\w-]+)", script).group(1)
                lab.curl("-X", "POST", "-H", "Content-Type: application/json", "--data",
                         json.dumps({"event": "failed", "detail": "disk /dev/vda not found"}),
                         f"{lab.server}/api/v1/machines/{other}/events?token={other_token}")
        wait(driver, lambda d: d.find_element("id", "count-failed").text == "1", "a failed neighbour")

        driver.set_window_size(390, 844)  # a phone: nothing wider than the screen
        wait(driver, lambda d: d.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"), "the page to fit a phone")
        driver.set_window_size(1280, 900)
        assert driver.find_element("id", "total").text == "5"
        if SCREENSHOTS:
            time.sleep(1.5)  # let the highlight of the last live update fade
            driver.save_screenshot(str(Path(SCREENSHOTS) / "board-fleet.png"))

        driver.find_element("link text", "rack1-node1").click()
        steps = wait(driver, lambda d: [li.get_attribute("data-kind")
                                        for li in d.find_elements("css selector", "#timeline li")], "the timeline")
        chain = ["dhcp.offer", "tftp.transfer", "http.ipxe", "http.kernel", "http.ignition", "installer.installed"]
        positions = [steps.index(kind) for kind in chain]
        assert positions == sorted(positions), steps
        page = driver.find_element("tag name", "main").text
        assert "profiles.yaml:1" in page and "machines.yaml:1" in page  # catalog sources
        assert token not in driver.page_source  # the installer token is masked in what it would get
        if SCREENSHOTS:
            driver.set_window_size(1280, 1500)
            driver.save_screenshot(str(Path(SCREENSHOTS) / "board-machine.png"))
            driver.set_window_size(1280, 900)

        driver.find_element("id", "reinstall").click()  # no token typed: refused, nothing changes
        wait(driver, lambda d: "missing admin token" in d.find_element("tag name", "body").text, "the refusal")
        driver.get(lab.board(f"/ui/machines/{mac}"))
        assert driver.find_element("id", "state").text == "installed"
        driver.find_element("css selector", "form[action$='/reinstall'] input[name=admin_token]").send_keys(ADMIN_TOKEN)
        driver.find_element("id", "reinstall").click()
        wait(driver, lambda d: d.find_element("id", "state").text == "ready", "ready after the reinstall")
        assert "Reinstall asked" in driver.find_element("tag name", "main").text

        (lab.catalog / "broken.yaml").write_text(
            "apiVersion: bootserver/v1\nkind: Machine\nmetadata: {name: rack1-node2}\n"
            "spec: {mac: \"52:54:00:00:00:99\", profile: no-such-profile}\n")
        driver.get(lab.board("/ui/health"))

        def shows_error(d):
            d.refresh()
            return "broken.yaml:" in d.find_element("id", "errors").text
        wait(driver, shows_error, "the broken edit on the health page")
        errors = driver.find_element("id", "errors").text
        assert re.search(r"broken\.yaml:\d+(:\d+)?", errors) and "no-such-profile" in errors
