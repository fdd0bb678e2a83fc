"""Issue 19 item 6: symlinks cannot lead /loaders/<name> out of the TFTP root, nor a template include
out of the template folder (the same rule TFTP and Butane's `local:` already keep)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from bootserver.render import jinja


def test_loaders_do_not_follow_a_symlink_out_of_a_tftp_root(serve, catalog_dir, tmp_path):
    secret = tmp_path / "secret.key"
    secret.write_text("PRIVATE KEY\n")
    root = tmp_path / "tftproot"
    root.mkdir()
    (root / "evil.efi").symlink_to(secret)
    (root / "inside.efi").write_bytes(b"MZ loader")
    (root / "link.efi").symlink_to(root / "inside.efi")
    server = serve("--catalog", str(catalog_dir), "--state", "memory://", "--tftp-root", str(root), "--tftp", "off")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.url + "/loaders/evil.efi", timeout=10)
    assert refused.value.code in (403, 404) and b"PRIVATE" not in refused.value.read()
    with urllib.request.urlopen(server.url + "/loaders/link.efi", timeout=10) as r:  # a link inside is fine
        assert r.read() == b"MZ loader"
    with urllib.request.urlopen(server.url + "/loaders/ipxe.efi", timeout=10) as r:  # the iPXE package's own
        assert r.status == 200


def test_a_template_include_cannot_follow_a_symlink_out_of_its_folder(tmp_path):
    (tmp_path / "secret.txt").write_text("PRIVATE KEY\n")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "evil.bu").symlink_to(tmp_path / "secret.txt")
    (templates / "node.bu").write_text("a: 1\nb: |\n  {% include 'evil.bu' %}\n")
    with pytest.raises(jinja.TemplateError) as refused:
        jinja.render_file(templates / "node.bu", {})
    assert "outside" in str(refused.value) and "PRIVATE" not in str(refused.value)
