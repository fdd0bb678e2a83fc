"""The Vagrant lab driver without booting anything: its settings reach the Vagrantfile, bad input is
refused before anything starts, and `down` copes with records that are missing or not its own."""

import json
import subprocess
import sys

import pytest

from bootserver.lab.vagrant import STATE_FILE, VagrantLab, VagrantLabError


def test_the_driver_settings_define_the_machines_it_asks_for(tmp_path):
    lab = VagrantLab(tmp_path, ["bios", "uefi", "bios"], driver="qemu", net="10.89.0")
    env = {**lab.vagrant_env(), "VAGRANT_HOME": str(tmp_path / "home")}
    proc = subprocess.run(["vagrant", "status", "--machine-readable"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [line.split(",")[1] for line in proc.stdout.splitlines() if ",state," in line] == ["pxe1", "pxe2", "pxe3"]
    assert [m.mac for m in lab.machines.values()] == ["52:54:00:88:00:01", "52:54:00:88:00:02", "52:54:00:88:00:03"]
    assert lab.base_url == "http://10.89.0.1:8080"


@pytest.mark.parametrize("kwargs,message", [
    ({"firmwares": []}, "1 to 9 machines"),
    ({"firmwares": ["bios"] * 10}, "1 to 9 machines"),
    ({"firmwares": ["coreboot"]}, "each bios or uefi"),
    ({"driver": "xen"}, "driver must be kvm or qemu"),
    ({"net": "10.88.0.0/24"}, "three octets"),
    ({"net": "10.300.0"}, "three octets"),
    ({"netns": "bslab-sw"}, "not a Vagrant lab namespace name"),
])
def test_bad_settings_are_refused(tmp_path, kwargs, message):
    args = {"firmwares": ["bios"], **kwargs}
    with pytest.raises(VagrantLabError, match=message):
        VagrantLab(tmp_path, **args)


def test_a_record_that_is_not_a_labs_is_refused(tmp_path):
    (tmp_path / STATE_FILE).write_text('{"netns": "bsvg-000000"}')
    with pytest.raises(VagrantLabError, match="not a Vagrant lab's record"):
        VagrantLab.load(tmp_path)
    (tmp_path / STATE_FILE).write_text(json.dumps({"netns": "bslab-sw", "firmwares": ["bios"], "driver": "qemu",
                                                   "net": "10.88.0"}))
    with pytest.raises(VagrantLabError, match="namespace name"):
        VagrantLab.load(tmp_path)


def test_down_without_a_lab_removes_nothing(tmp_path):
    assert VagrantLab.load(tmp_path) is None
    proc = subprocess.run([sys.executable, "-m", "bootserver", "lab", "vagrant", "down", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode == 2 and "run as root" in proc.stderr:
        pytest.skip("needs root")
    assert proc.returncode == 0, proc.stderr
    assert "nothing recorded" in proc.stdout
