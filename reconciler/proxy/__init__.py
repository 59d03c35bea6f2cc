"""The SMTP submission proxy (SPEC §7, issue 12): clients log in with an account's email
and SMTP password; each message is relayed through the account's own upstream server.

``config`` (settings, listen checks), ``auth`` (who may log in; the registry view and its
change listener), ``ratelimit`` (failed-login throttling, shared through the registry),
``smtp`` (the client side on aiosmtpd: AUTH, PROXY protocol), ``handler`` (the
transparent relay, one transaction at a time), ``upstream`` (one session with an
account's server, every step with a deadline), ``pool`` (sessions per account, reused),
``records`` (Received line, recipients classified, ledger and delivery log), ``relay``
(results and replies), ``server`` (shared core, listening, graceful stop), ``service``
(assembling it for the CLI).
"""
