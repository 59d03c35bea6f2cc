"""Finding codes, their severities and one-line fixes (pure: no I/O)."""
from __future__ import annotations

from dataclasses import dataclass, field

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}

# code -> default severity (a check may lower or raise it, e.g. dkim_weak_key)
CODES = {
    "mx_missing": WARNING,
    "spf_missing": ERROR,
    "spf_invalid": ERROR,
    "spf_too_many_lookups": ERROR,
    "spf_not_authorized": ERROR,
    "dkim_missing": ERROR,
    "dkim_weak_key": WARNING,
    "dmarc_missing": ERROR,
    "dmarc_policy_none": WARNING,
    "dmarc_unaligned": WARNING,
    "ptr_mismatch": WARNING,
    "mta_sts_missing": INFO,
    "tls_rpt_missing": INFO,
    "reply_to_no_mx": ERROR,
    "reply_to_rejected": ERROR,
}


@dataclass(frozen=True)
class Finding:
    """One problem found for one account: what, how bad, and the fix in one line."""

    account: str
    domain: str
    code: str
    message: str
    fix: str
    severity: str = ""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}")
        if not self.severity:
            object.__setattr__(self, "severity", CODES[self.code])

    def to_dict(self) -> dict:
        return {"account": self.account, "domain": self.domain, "code": self.code,
                "severity": self.severity, "message": self.message, "fix": self.fix}

    def line(self) -> str:
        return f"{self.code} ({self.severity}) {self.domain}: {self.message}; fix: {self.fix}"


@dataclass
class AccountReport:
    """What the DNS checks of one account found, and the records they read."""

    account: str
    domain: str
    findings: list[Finding] = field(default_factory=list)
    records: dict[str, object] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)   # lookups no server answered

    def add(self, code: str, message: str, fix: str, *, severity: str = "",
            domain: str | None = None) -> None:
        self.findings.append(Finding(self.account, domain or self.domain, code, message, fix,
                                     severity))

    def failing(self, strict: bool = False) -> list[Finding]:
        """Findings that fail a check: errors; with ``strict``, warnings too."""
        bad = {ERROR, WARNING} if strict else {ERROR}
        return [f for f in self.findings if f.severity in bad]

    def to_dict(self) -> dict:
        ordered = sorted(self.findings, key=lambda f: SEVERITY_ORDER[f.severity])
        return {"account": self.account, "domain": self.domain,
                "findings": [f.to_dict() for f in ordered], "records": self.records,
                "errors": self.errors}


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().rstrip(".").lower()


def summary(reports: list[AccountReport]) -> dict[str, int]:
    counts = {ERROR: 0, WARNING: 0, INFO: 0}
    for report in reports:
        for finding in report.findings:
            counts[finding.severity] += 1
    return {"accounts": len(reports), "errors": counts[ERROR], "warnings": counts[WARNING],
            "info": counts[INFO], "lookup_errors": sum(len(r.errors) for r in reports)}
