"""E-mail sender: Django's email backend (SMTP from EMAIL_URL / EMAIL_*, console in development).

One SMTP connection per batch; French templates with a plain-text part and an HTML
alternative (`notifications/templates/notifications/email/`).
"""

from __future__ import annotations

import contextlib
import smtplib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string


@dataclass
class EmailResult:
    sent: list[str] = field(default_factory=list)  # delivery ids
    refused: dict[str, str] = field(default_factory=dict)  # delivery id → reason (permanent)
    transient_error: str = ""  # set when the connection failed: the unsent rest is retried


def render(*, title: str, body: str, data: dict[str, Any], full_name: str) -> tuple[str, str, str]:
    context = {"title": title, "body": body, "data": data, "full_name": full_name}
    subject = render_to_string("notifications/email/subject.txt", context).strip().replace("\n", " ")
    return (
        subject,
        render_to_string("notifications/email/body.txt", context),
        render_to_string("notifications/email/body.html", context),
    )


def send_batch(recipients: list[tuple[str, str, str]], *, title: str, body: str, data: dict[str, Any]) -> EmailResult:
    """`recipients`: (delivery id, address, full name). Stops at the first connection
    error; what was sent before it is reported as sent."""
    result = EmailResult()
    connection = get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT)
    try:
        connection.open()
        for delivery_id, address, full_name in recipients:
            subject, text, html = render(title=title, body=body, data=data, full_name=full_name)
            message = EmailMultiAlternatives(
                subject, text, settings.DEFAULT_FROM_EMAIL, [address], connection=connection
            )
            message.attach_alternative(html, "text/html")
            try:
                message.send()
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
                result.refused[delivery_id] = str(exc)[:300]
                continue
            result.sent.append(delivery_id)
    except (OSError, smtplib.SMTPException) as exc:
        result.transient_error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            connection.close()
    return result
