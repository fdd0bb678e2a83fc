from bootserver.boot.request import BootRequest, Stage
from bootserver.discovery import LOCALLY_ADMINISTERED, facts_from, vendor_of


def test_vendor_from_registered_oui():
    assert vendor_of("00:1b:21:12:34:56") == "Intel Corporate"
    assert vendor_of("00-50-56-AB-CD-EF") == "VMware, Inc."


def test_locally_administered_and_unregistered_and_bad():
    assert vendor_of("52:54:00:a1:9c:ae") == LOCALLY_ADMINISTERED  # QEMU
    assert vendor_of("f4:ff:ff:00:00:01") is None  # not in the registry
    assert vendor_of("not a mac") is None


def test_facts_from_request():
    req = BootRequest(mac="00:1b:21:12:34:56", arch="x86_64-bios", stage=Stage.PXE, uuid="u-1",
                      client_ip="10.0.0.9", interface="eth1")
    assert facts_from(req) == dict(arch="x86_64-bios", uuid="u-1", interface="eth1", client_ip="10.0.0.9",
                                   vendor="Intel Corporate")
