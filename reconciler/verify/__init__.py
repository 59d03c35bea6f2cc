"""Connectivity checks ("check settings") and the debug matrix ("debug settings").

    from reconciler.servers import ServerSettings
    from reconciler.verify import check
    result = check(ServerSettings("smtp", "smtp.example.com", 587, "starttls",
                                  username="u", secret="p"), timeout=10)
    result.code, result.to_dict()

Trust: the system CA store, plus `ServerSettings.ca_file` or, when unset, the
PEM file named by the environment variable MAILFORM_CA_FILE.  `Endpoint` is an
alias of `ServerSettings`, kept for callers that still use the old name.
"""

from ..servers import ServerSettings
from .check import check
from .results import CODES, CheckResult, Endpoint

__all__ = ["CODES", "CheckResult", "Endpoint", "ServerSettings", "check"]
