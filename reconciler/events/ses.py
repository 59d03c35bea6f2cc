"""Amazon SES notifications (bounce and complaint), as SNS delivers them or as saved.

An SNS envelope (``Type: Notification``) carries the SES notification as a JSON string in
``Message``; a saved file may hold the notification itself. Both the notification
(``notificationType``) and event-publishing (``eventType``) shapes are read:
``bounce.bouncedRecipients[]`` (``emailAddress``, ``status``, ``diagnosticCode``) with
``bounce.bounceType`` Permanent / Transient / Undetermined, and
``complaint.complainedRecipients[]``. The event id is the notification's ``feedbackId``
and the recipient. Delivery and other notifications are skipped.
"""
from __future__ import annotations

import json
from typing import Any

from .provider import (PayloadError, ProviderEvent, complaint, enhanced, failure, moment,
                       need)

NAME = "ses"


def parse(payload: Any, where: str = "payload") -> list[ProviderEvent]:
    if isinstance(payload, dict) and "Type" in payload:
        if payload["Type"] != "Notification":
            return []          # a subscription (un)confirmation: no mail events
        text = need(payload, "Message", where)
        try:
            payload = json.loads(text)
        except ValueError:
            raise PayloadError(f"{where}.Message: not a JSON SES notification") from None
        where += ".Message"
    if not isinstance(payload, dict):
        raise PayloadError(f"{where}: an SES notification is a JSON object")
    kind = payload.get("notificationType") or payload.get("eventType")
    if not isinstance(kind, str):
        raise PayloadError(f"{where}: neither notificationType nor eventType is given")
    mail = payload.get("mail") if isinstance(payload.get("mail"), dict) else {}
    if kind == "Bounce":
        return _bounces(need(payload, "bounce", where, dict), mail, where + ".bounce")
    if kind == "Complaint":
        return _complaints(need(payload, "complaint", where, dict), mail, where + ".complaint")
    return []


def _more(mail: dict) -> dict:
    headers = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    return {"message_id": headers.get("messageId") or mail.get("messageId"),
            "sender": mail.get("source")}


def _bounces(bounce: dict, mail: dict, where: str) -> list[ProviderEvent]:
    feedback = need(bounce, "feedbackId", where)
    when = moment(need(bounce, "timestamp", where), where + ".timestamp")
    transient = bounce.get("bounceType") == "Transient"
    out = []
    for i, row in enumerate(need(bounce, "bouncedRecipients", where, list)):
        spot = f"{where}.bouncedRecipients[{i}]"
        email = need(row, "emailAddress", spot)
        diagnostic = row.get("diagnosticCode") if isinstance(row, dict) else None
        status = enhanced(row.get("status")) or enhanced(diagnostic)
        out.append(failure(NAME, f"{feedback}:{email.lower()}", email, when, status,
                           diagnostic, transient, **_more(mail),
                           extra={"bounceType": bounce.get("bounceType"),
                                  "bounceSubType": bounce.get("bounceSubType")}))
    return out


def _complaints(report: dict, mail: dict, where: str) -> list[ProviderEvent]:
    feedback = need(report, "feedbackId", where)
    when = moment(need(report, "timestamp", where), where + ".timestamp")
    return [complaint(NAME, f"{feedback}:{need(row, 'emailAddress', spot).lower()}",
                      row["emailAddress"], when, **_more(mail),
                      extra={"feedbackType": report.get("complaintFeedbackType")})
            for i, row in enumerate(need(report, "complainedRecipients", where, list))
            for spot in [f"{where}.complainedRecipients[{i}]"]]
