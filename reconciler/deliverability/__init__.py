"""Deliverability: will mail from an account be delivered (DNS checks: MX, SPF, DKIM,
DMARC, forward-confirmed reverse DNS, MTA-STS, TLS-RPT, the reply-to), and where are an
account's servers (discovery: RFC 6186/8314 SRV records, autoconfig files, MX guesses).

Every DNS lookup goes through one resolver (`resolver.Lookup`), which honours
``--dns-server HOST[:PORT]`` and MAILFORM_DNS_SERVER.  This package file imports
nothing, so that the pure finding types can be used without pulling in dnspython.
"""
