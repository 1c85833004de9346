"""SMTP email for re-engagement: one message per record, subject and body templated.

Templates use ``$field`` / ``${field}`` over the record's fields (a missing
field is a permanent error for that record, naming the field). Each message
carries ``Message-ID: <record id@kirana>`` so a mail system can drop
duplicates. Messages go out one by one, so a failure names the record it hit
and the ones before it count as delivered. Deletes send nothing.
"""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from string import Template
from typing import Any

from kirana.destinations.config import EmailSettings
from kirana.destinations.errors import DeliveryError, PermanentError, RetryableError
from kirana.destinations.records import OutboundRecord


def render(template: str, fields: dict[str, Any]) -> str:
    """Fill ``template`` from ``fields``; a missing field raises ``KeyError`` naming it."""
    return Template(template).substitute({k: "" if v is None else v for k, v in fields.items()})


def template_fields(template: str) -> list[str]:
    return Template(template).get_identifiers()


def compose(settings: EmailSettings, record: OutboundRecord) -> EmailMessage:
    fields = record.data
    to = fields.get(settings.to_field)
    if not isinstance(to, str) or "@" not in to:
        raise PermanentError(f"field `{settings.to_field}` holds no email address ({to!r})")
    try:
        subject = render(settings.subject, fields)
        body = render(settings.body, fields)
    except KeyError as exc:
        raise PermanentError(
            f"the template needs field `{exc.args[0]}`, which the record lacks"
        ) from exc
    except ValueError as exc:
        raise PermanentError(f"bad template: {exc}") from exc
    message = EmailMessage()
    message["From"] = settings.from_address
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{record.record_id}@kirana>"
    message["X-Kirana-Idempotency-Key"] = record.record_id
    message.set_content(body)
    return message


class EmailDestination:
    def __init__(self, settings: EmailSettings) -> None:
        self._s = settings

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self._s.host, self._s.port, timeout=self._s.timeout_seconds)
        if self._s.starttls:
            smtp.starttls()
        if self._s.username:
            smtp.login(self._s.username, self._s.password or "")
        return smtp

    def deliver(self, records: Sequence[OutboundRecord]) -> None:
        try:
            smtp = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise RetryableError(f"SMTP server unavailable: {exc}", outage=True) from exc
        try:
            for index, record in enumerate(records):
                if record.action == "delete":
                    continue
                try:
                    smtp.send_message(compose(self._s, record))
                except DeliveryError as exc:
                    exc.index = index
                    raise
                except smtplib.SMTPResponseException as exc:
                    error = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
                    cls = PermanentError if 500 <= exc.smtp_code < 600 else RetryableError
                    raise cls(error, index=index) from exc
                except smtplib.SMTPRecipientsRefused as exc:
                    raise PermanentError(
                        f"recipient refused: {exc.recipients}", index=index
                    ) from exc
                except (OSError, smtplib.SMTPException) as exc:
                    raise RetryableError(f"SMTP failed: {exc}", index=index) from exc
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass
