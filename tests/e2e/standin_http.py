"""Phase-1 stand-in for bootserver's HTTP side (used only until bootserver serves the lab itself).

Serves /boot.ipxe -> /ipxe?mac=..&platform=.. (boot the test OS, or boot from disk once the
machine posted "installed"), /assets/<file>, /ignition?mac=.., and POST /events?mac=..
Every request is appended to a JSON-lines log, which the tests read as the timeline.
"""

import argparse
import functools
import http.server
import json
import sys
import time
import urllib.parse
from pathlib import Path


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, *a, opts, **kw):
        self.opts = opts
        super().__init__(*a, **kw)

    def record(self, kind, **detail):
        with open(self.opts.events, "a") as f:
            f.write(json.dumps({"at": time.time(), "kind": kind, **detail}) + "\n")

    def installed(self):
        try:
            return {json.loads(l)["mac"] for l in open(self.opts.events) if '"installer.installed"' in l}
        except FileNotFoundError:
            return set()

    def reply(self, body, ctype="text/plain", status=200):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        base = self.opts.base
        if url.path == "/boot.ipxe":
            self.reply(f"#!ipxe\nchain {base}/ipxe?mac=${{net0/mac}}&platform=${{platform}}\n".encode())
        elif url.path == "/ipxe":
            mac = q["mac"]
            self.record("http.ipxe", mac=mac, platform=q.get("platform"))
            if mac in self.installed():
                script = "sanboot --no-describe --drive 0x80" if q.get("platform") == "pcbios" else "exit"
                self.record("local-disk", mac=mac)
            else:
                host = self.opts.hosts[mac]
                kernel, initrd = self.opts.kernel, self.opts.initrd
                script = (f"kernel {base}/assets/{kernel} initrd={Path(initrd).name} console=ttyS0 panic=-1 "
                          f"ignition.config.url={base}/ignition?mac={mac} testos.hostname={host} "
                          f"testos.events={base}/events?mac={mac}\ninitrd {base}/assets/{initrd}\nboot\n")
            self.reply(f"#!ipxe\n{script}\n".encode())
        elif url.path.startswith("/assets/"):
            path = Path(self.opts.assets) / url.path[len("/assets/"):]
            self.record("http.asset", path=url.path, mac=None)
            self.reply(path.read_bytes(), "application/octet-stream")
        elif url.path == "/ignition":
            mac = q["mac"]
            self.record("http.ignition", mac=mac)
            cfg = {"ignition": {"version": "3.4.0"}, "storage": {"files": [
                {"path": "/etc/hostname", "contents": {"source": f"data:,{self.opts.hosts[mac]}"}}]}}
            self.reply(json.dumps(cfg).encode(), "application/json")
        else:
            self.reply(b"not found\n", status=404)

    do_HEAD = do_GET

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.record("installer." + body["event"], mac=q["mac"])
        self.reply(b"{}", "application/json")

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--assets", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--host", action="append", default=[], help="MAC=HOSTNAME")
    opts = ap.parse_args()
    opts.hosts = dict(h.split("=", 1) for h in opts.host)
    opts.base = f"http://{opts.bind}:8080"
    http.server.ThreadingHTTPServer((opts.bind, 8080), functools.partial(Handler, opts=opts)).serve_forever()


if __name__ == "__main__":
    main()
