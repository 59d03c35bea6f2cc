"""HTTP(S) requests of the events package: TLS checked against the system's trust plus
``MAILFORM_CA_FILE``; redirects are not followed (an allow-listed SNS certificate URL or
a webhook URL must not send mailform somewhere else: a 3xx is an answer, not a hop)."""
from __future__ import annotations

import urllib.request
from typing import Any, Union

from ..trust import client_context, trust_file


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def open_url(request: Union[str, urllib.request.Request], timeout: float) -> Any:
    """``urlopen`` without redirects (raises ``urllib.error.HTTPError`` for a 3xx)."""
    opener = urllib.request.build_opener(
        _NoRedirect(), urllib.request.HTTPSHandler(context=client_context(True, trust_file())))
    return opener.open(request, timeout=timeout)
