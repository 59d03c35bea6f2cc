"""The SMTP submission proxy (SPEC §7): clients log in with an account's email and SMTP
password; each message is relayed through the account's own upstream SMTP server.

``auth`` (who may log in, checked against the registry), ``ratelimit`` (failed-login
throttling), ``relay`` (one message through an upstream), ``server`` (aiosmtpd glue).
"""
