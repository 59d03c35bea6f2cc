"""Connectivity checks ("check settings") and the debug matrix ("debug settings").

    from reconciler.verify import Endpoint, check
    result = check(Endpoint("smtp", "smtp.example.com", 587, "starttls",
                            username="u", password="p"), timeout=10)
    result.code, result.to_dict()

Trust: the system CA store, plus `Endpoint.ca_file` or, when unset, the PEM
file named by the environment variable MAILFORM_CA_FILE.
"""

from .check import check
from .results import CODES, CheckResult, Endpoint

__all__ = ["CODES", "CheckResult", "Endpoint", "check"]
