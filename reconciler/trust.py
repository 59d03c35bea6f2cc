"""Client TLS contexts shared by every part that talks to a mail server (the probes,
the inbox scanner, the proxy's relay). Imports nothing of ours.

Trust is the system CA store plus, optionally, one extra PEM file: given
explicitly, or named by the environment variable MAILFORM_CA_FILE.
"""
from __future__ import annotations

import os
import ssl
import threading
from typing import Optional

CA_FILE_ENV = "MAILFORM_CA_FILE"

_CONTEXTS: dict[tuple[bool, Optional[str]], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def trust_file(explicit: Optional[str] = None) -> Optional[str]:
    """The extra trust anchor: ``explicit``, else MAILFORM_CA_FILE, else None."""
    return explicit or os.environ.get(CA_FILE_ENV) or None


def _build(verify: bool, ca_file: Optional[str]) -> ssl.SSLContext:
    if not verify:
        # Nothing is verified: no need to load (slowly) the system trust store.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


def client_context(verify: bool = True, ca_file: Optional[str] = None) -> ssl.SSLContext:
    """A client context, built once per (verify, ca_file) and shared between
    threads (SSLContext is thread-safe).  Built under a lock so that a burst of
    concurrent checks does not load the system trust store fifty times over.

    The system trust store is always loaded; `ca_file` adds a trust anchor.
    """
    key = (bool(verify), ca_file or None)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        with _CONTEXTS_LOCK:
            ctx = _CONTEXTS.get(key)
            if ctx is None:
                ctx = _CONTEXTS[key] = _build(*key)
    return ctx
