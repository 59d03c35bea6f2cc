"""Events (issue 14): the contact event log's readers, outbound webhooks (signed, retried,
dead-lettered), and bounces and complaints reported by email providers (Amazon SES via
SNS, SendGrid, Mailgun, Postmark), from saved files or a webhook server.

* ``provider``: the normalised ``ProviderEvent`` and the typed payload errors;
* ``ses``, ``sendgrid``, ``mailgun``, ``postmark``: each provider's documented format
  (``parse``) and what it signs (``verify``); ``sns``: SNS message signatures;
* ``ingest``: provider events into the contact ledger, idempotent by event id;
* ``server``: ``webhooks serve``, one path per provider;
* ``config``, ``signing``, ``deliver``: outbound webhooks from the project file.
"""
