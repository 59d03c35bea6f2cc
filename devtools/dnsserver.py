"""A real authoritative DNS server (NSD) on 127.0.0.1 and a high port, serving zones
that tests write, plus a small HTTPS server for autoconfig files; no systemd.

    with DnsServer(workdir) as dns:
        dns.add_zone("good.test", ["@ MX 10 mx.good.test.", 'mx A 127.0.0.1',
                                   '@ TXT "v=spf1 ip4:127.0.0.1 -all"'])
        dns.start()
        os.environ["MAILFORM_DNS_SERVER"] = dns.address        # "127.0.0.1:PORT"

    with AutoconfigServer(workdir, {"/mail/config-v1.1.xml": xml}, names) as web:
        web.port, web.ca_file     # HTTPS with a throwaway CA (devtools/certs.py)

NSD runs in the foreground (`nsd -d`) with a private config: its own pidfile,
zonesdir, no database, one server process, as the current user.  Needs the Debian
package nsd (`/usr/sbin/nsd`).
"""
from __future__ import annotations

import atexit
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping, Optional

NSD = shutil.which("nsd") or "/usr/sbin/nsd"

CONF = """server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    server-count: 1
    username: ""
    database: ""
    zonesdir: "{dir}"
    zonelistfile: "{dir}/zone.list"
    xfrdfile: "{dir}/xfrd.state"
    xfrdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    logfile: "{dir}/nsd.log"
    do-ip6: no
    verbosity: 1
remote-control:
    control-enable: no
"""

SOA = """$ORIGIN {zone}.
$TTL 60
@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60
@ IN NS ns.{zone}.
"""


class DnsServerError(RuntimeError):
    pass


def nsd_missing(exc: Exception) -> None:
    """In a test: fail on CI (CI=true), where NSD must run; skip elsewhere."""
    import pytest
    message = f"NSD cannot start here: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def txt(value: str) -> str:
    """A TXT value as zone-file strings of at most 255 characters each."""
    chunks = [value[i:i + 250] for i in range(0, len(value), 250)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (>= 10000)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            if port < 10000:
                continue
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise DnsServerError("no free port")


class DnsServer:
    def __init__(self, workdir: str | os.PathLike):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zones: dict[str, list[str]] = {}
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_zone(self, name: str, records: Iterable[str], ns_address: str = "127.0.0.1"):
        """Zone ``name`` with SOA and NS added; ``records`` are zone-file lines relative
        to the zone's origin.  Takes effect on start() / restart()."""
        name = name.rstrip(".").lower()
        self.zones[name] = [f"ns A {ns_address}", *records]
        return self

    def _write(self) -> Path:
        conf = CONF.format(port=self.port, dir=self.dir)
        for name, records in self.zones.items():
            (self.dir / f"{name}.zone").write_text(
                SOA.format(zone=name) + "\n".join(records) + "\n")
            conf += f'zone:\n    name: "{name}"\n    zonefile: "{name}.zone"\n'
        path = self.dir / "nsd.conf"
        path.write_text(conf)
        return path

    def start(self, timeout: float = 20.0) -> "DnsServer":
        if not os.path.exists(NSD):
            raise DnsServerError("nsd is not installed (apt-get install nsd)")
        self.port = self.port or free_port()
        conf = self._write()
        check = subprocess.run([NSD + "-checkconf", str(conf)], capture_output=True, text=True) \
            if os.path.exists(NSD + "-checkconf") else None
        if check is not None and check.returncode != 0:
            raise DnsServerError(f"nsd-checkconf: {check.stdout}{check.stderr}")
        self.proc = subprocess.Popen([NSD, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "nsd.stderr", "wb"))
        atexit.register(self.stop)      # never left running by a crashed test run
        self._wait(timeout)
        return self

    def _wait(self, timeout: float) -> None:
        import dns.message
        import dns.query
        deadline = time.monotonic() + timeout
        probe = next(iter(self.zones), "localhost")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DnsServerError(f"nsd exited: {self.log_tail()}")
            try:
                dns.query.udp(dns.message.make_query(probe + ".", "SOA"), "127.0.0.1",
                              timeout=0.5, port=self.port)
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        self.stop()
        raise DnsServerError(f"nsd did not answer within {timeout}s: {self.log_tail()}")

    def restart(self) -> "DnsServer":
        self.stop()
        return self.start()

    def log_tail(self) -> str:
        parts = []
        for name in ("nsd.log", "nsd.stderr"):
            path = self.dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> "DnsServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def make_web_certificate(directory: Path, names: Iterable[str]) -> tuple[Path, Path]:
    """(CA file, key+certificate file) of a throwaway CA and a server certificate for
    ``names`` (devtools/certs.py)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from .certs import _cert, _write_pem
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _cert("mailform autoconfig test CA", ca_key, None, None, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(names)
    cert = _cert(names[0], key, ca_cert, ca_key, names=names)
    ca_path, server_path = directory / "web-ca.crt", directory / "web-server.pem"
    _write_pem(ca_path, ca_cert)
    _write_pem(server_path, key, cert)
    return ca_path, server_path


class AutoconfigServer:
    """HTTPS on 127.0.0.1:port serving ``files`` (path without query -> body)."""

    def __init__(self, workdir: str | os.PathLike, files: Mapping[str, bytes | str],
                 names: Iterable[str]):
        self.files = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
        self.ca_file, self._pem = make_web_certificate(Path(workdir), names)
        self.requests: list[tuple[str, str]] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._pem)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                owner.requests.append((self.headers.get("Host", ""), self.path))
                body = owner.files.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/xml")
                self.end_headers()
                self.wfile.write(body or b"not found")

            def log_message(self, *args):
                pass
        return Handler

    def __enter__(self) -> "AutoconfigServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
