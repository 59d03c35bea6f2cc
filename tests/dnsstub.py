"""A DNS server for the whole test session that knows no names (every answer NXDOMAIN).

`plan --verify` and the apply gate run deliverability checks (issue 15); tests that do
not start their own zones (devtools/dnsserver.py) must neither wait on nor depend on
the machine's resolver, so the session points MAILFORM_DNS_SERVER here.
"""
from __future__ import annotations

import socket
import threading

import dns.message
import dns.rcode


class NxdomainServer:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "NxdomainServer":
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                reply = dns.message.make_response(dns.message.from_wire(data))
            except Exception:       # not a DNS query: ignore it
                continue
            reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def stop(self) -> None:
        self.sock.close()
