"""render_ignition: one RenderError for every failure, warnings with their lines, a cache that is safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootserver.render.butane import dataurl
from bootserver.render.butane_template import render_ignition
from bootserver.render.errors import RenderError
from bootserver.render.render_cache import RenderCache
from bootserver.render.served_ignition import check_config

from . import ignition_validate

CONTEXT = {
    "machine": {"name": "node1", "mac": "52:54:00:a1:9c:ae", "mac_hyphen": "52-54-00-a1-9c-ae",
                "mac_plain": "525400a19cae", "metadata": {"hostname": "node1"}},
    "metadata": {"hostname": "node1", "install_disk": "/dev/vda"},
    "profile": {"name": "p"},
    "request": {"arch": "x86_64-efi", "uuid": None, "client_ip": "10.0.0.5", "labels": {}},
    "urls": {"base": "http://10.0.0.1:8080", "ignition": "http://10.0.0.1:8080/ignition?mac=52:54:00:a1:9c:ae",
             "metadata": "http://10.0.0.1:8080/metadata?mac=52:54:00:a1:9c:ae",
             "events": "http://10.0.0.1:8080/api/v1/machines/52:54:00:a1:9c:ae/events?token=t0k",
             "assets": "http://10.0.0.1:8080/assets", "ipxe": "http://10.0.0.1:8080/ipxe?mac=52:54:00:a1:9c:ae"},
}
HEAD = "variant: flatcar\nversion: 1.1.0\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.bu"
    path.write_text(text)
    return path


def test_renders_local_files_from_files_dir(tmp_path):
    (tmp_path / "motd").write_text("Welcome to {{ not a template }}\n")
    path = write(tmp_path, HEAD + "storage:\n  files:\n  - path: /etc/motd\n    mode: 0644\n"
                                  "    contents:\n      local: motd\n"
                                  "  - path: /etc/hostname\n    contents:\n      inline: {{ metadata.hostname | tojson }}\n")
    config, warnings = render_ignition(path, CONTEXT, files_dir=tmp_path)
    assert warnings == []
    assert dataurl.decode(config["storage"]["files"][0]["contents"]["source"]) == b"Welcome to {{ not a template }}\n"
    assert config["storage"]["files"][1]["contents"]["source"] == "data:,node1"
    ignition_validate.assert_valid(config)


def test_template_error_is_a_render_error(tmp_path):
    path = write(tmp_path, HEAD + "x: {{ metadata.nope }}\n")
    with pytest.raises(RenderError) as info:
        render_ignition(path, CONTEXT, files_dir=tmp_path)
    assert (info.value.file, info.value.line) == (str(path), 3)


def test_butane_error_names_template_and_rendered_line(tmp_path):
    path = write(tmp_path, HEAD + "storage:\n  files:\n  - path: {{ 'etc/relative' | tojson }}\n")
    with pytest.raises(RenderError) as info:
        render_ignition(path, CONTEXT, files_dir=tmp_path)
    err = info.value
    assert (err.file, err.line) == (str(path), 5)
    assert err.message == "error at $.storage.files.0.path: path not absolute (line 5 of the rendered document)"
    assert [(e.line, e.message) for e in err.entries] == [(5, "path not absolute")]


def test_butane_errors_point_at_the_template_line_after_multiline_values(tmp_path):
    (tmp_path / "part.bu").write_text("  - path: /etc/from-include\n    mode: 0644\n")
    path = write(tmp_path, HEAD + (
        "passwd:\n  users:\n  - name: core\n"
        "    ssh_authorized_keys: {{ metadata.ssh_keys | tojson(indent=2) | indent(4) }}\n"  # 6 lines of output
        "storage:\n  files:\n"
        "{% for i in range(3) %}\n  - path: /etc/f{{ i }}\n{% endfor %}\n"
        "{% include 'part.bu' %}\n"
        "  - path: {{ metadata.bad | tojson }}\n"
        "    mode: 644\n"))
    context = {**CONTEXT, "metadata": {"ssh_keys": ["ssh-ed25519 A", "ssh-ed25519 B", "ssh-ed25519 C"], "bad": "rel/x"}}
    with pytest.raises(RenderError) as info:
        render_ignition(path, context, files_dir=tmp_path)
    err = info.value
    assert (err.file, err.line) == (str(path), 13)  # the template line, not the rendered line
    assert "path not absolute (line 23 of the rendered document)" in err.message
    good = {**context, "metadata": {**context["metadata"], "bad": "/etc/ok"}}
    _, warnings = render_ignition(path, good, files_dir=tmp_path)
    assert [(w.file, w.line, w.path) for w in warnings] == [(str(path), 14, "$.storage.files.4.mode")]


def test_local_file_outside_files_dir_is_refused(tmp_path):
    path = write(tmp_path, HEAD + "storage:\n  files:\n  - path: /x\n    contents:\n      local: ../../etc/passwd\n")
    with pytest.raises(RenderError, match="traverses outside the files directory"):
        render_ignition(path, CONTEXT, files_dir=tmp_path)


def test_warnings_are_returned_and_strict_refuses(tmp_path):
    path = write(tmp_path, HEAD + "storage:\n  files:\n  - path: /x\n    mode: 755\n")
    config, warnings = render_ignition(path, CONTEXT, files_dir=tmp_path)
    assert [(w.line, w.path) for w in warnings] == [(6, "$.storage.files.0.mode")]
    assert config["storage"]["files"][0]["mode"] == 755
    with pytest.raises(RenderError, match="leading zero"):
        render_ignition(path, CONTEXT, files_dir=tmp_path, strict=True)


def test_ready_json_configs_are_checked_too():
    assert check_config({"ignition": {"version": "3.3.0"}}, "x.ign")
    with pytest.raises(RenderError, match=r"error at \$.ignition.version: unsupported config version"):
        check_config({"ignition": {"version": "9.0.0"}}, "x.ign")
    with pytest.raises(RenderError, match="JSON object"):
        check_config([], "x.ign")


def test_cache_hits_per_machine_and_generation():
    cache = RenderCache(size=2)
    renders = []

    def render(value):
        return lambda: renders.append(value) or value

    k1 = RenderCache.key("m1", 1, CONTEXT)
    assert cache.get_or_render(k1, render("a")) == "a"
    assert cache.get_or_render(RenderCache.key("m1", 1, dict(CONTEXT)), render("b")) == "a"  # same again
    assert cache.get_or_render(RenderCache.key("m1", 2, CONTEXT), render("c")) == "c"  # catalog reloaded
    other = {**CONTEXT, "request": {**CONTEXT["request"], "client_ip": "10.0.0.6"}}
    assert cache.get_or_render(RenderCache.key("m1", 2, other), render("d")) == "d"  # what the template sees
    assert cache.get_or_render(k1, render("e")) == "e"  # evicted (size 2)
    assert renders == ["a", "c", "d", "e"]


def test_cache_does_not_keep_errors():
    cache = RenderCache()
    key = RenderCache.key("m", 1, {})

    def boom():
        raise RenderError("f", 1, "broken")

    with pytest.raises(RenderError):
        cache.get_or_render(key, boom)
    assert cache.get_or_render(key, lambda: "fixed") == "fixed"
