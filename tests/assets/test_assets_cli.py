"""`bootserver assets ...` through the real command line, in a subprocess."""

import os
import pty
import subprocess
import sys

from .fakeflatcar import IMAGE, publish


def bootserver(*argv, cwd, stderr=subprocess.PIPE):
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    return subprocess.run([sys.executable, "-m", "bootserver", "assets", *argv], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=120, check=False)


def test_fetch_list_prune_from_the_command_line(server, signing_key, tmp_path):
    publish(server, signing_key, "4081.2.0", size=20_000)
    done = bootserver("fetch", "flatcar", "--base-url", f"{server.url}/amd64-usr", "--keyring",
                      str(signing_key.armored), "--assets", "mirror", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "flatcar amd64 4081.2.0: fetched and verified" in done.stdout
    assert "flatcar/amd64/current -> 4081.2.0" in done.stdout
    assert (tmp_path / "mirror/flatcar/amd64/current" / IMAGE).is_file()
    listed = bootserver("--assets", "mirror", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "flatcar/amd64/4081.2.0" in listed.stdout
    pruned = bootserver("prune", "--keep", "1", "--assets", "mirror", cwd=tmp_path)
    assert pruned.returncode == 0 and pruned.stdout == "nothing to prune\n"


def test_progress_bar_on_a_terminal(server, signing_key, tmp_path):
    publish(server, signing_key, "4081.2.0", size=300_000)
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "bootserver", "assets", "fetch", "flatcar", "--base-url",
                             f"{server.url}/amd64-usr", "--keyring", str(signing_key.armored), "--assets", "m"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    try:
        while True:  # read while it runs, so a full terminal buffer never blocks it
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        assert proc.wait(timeout=60) == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert "flatcar_production_image.bin.bz2 [" in shown and "100.0%" in shown  # the bar
    assert "downloading " not in shown  # not the plain lines used off a terminal


def test_errors_exit_1_with_a_message(tmp_path):
    done = bootserver("fetch", "flatcar", "--version", "latest", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: --version 'latest'")
