"""How messages leave the platform: email over SMTP, SMS through a provider (Twilio, or a log)."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

from flask import Flask, current_app

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A message could not be handed to its channel; it will be retried."""


@dataclass(frozen=True)
class Outgoing:
    """A rendered message for one recipient."""

    to: str
    subject: str
    body: str
    message_id: str
    #: Files sent with it (email only): (file name, MIME type, text), e.g. a calendar file.
    attachments: tuple[tuple[str, str, str], ...] = ()


class EmailSender(Protocol):
    def send(self, message: Outgoing, sender: str, reply_to: str | None) -> str: ...


class SmsSender(Protocol):
    def send(self, to: str, body: str) -> str: ...


class SmtpEmail:
    """Email through an SMTP server (the operator's relay, or one on loopback in tests)."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        starttls: bool,
        timeout: float = 10,
    ) -> None:
        self.host, self.port, self.username, self.password = host, port, username, password
        self.starttls, self.timeout = starttls, timeout

    def send(self, message: Outgoing, sender: str, reply_to: str | None) -> str:
        email = EmailMessage()
        email["From"] = sender
        email["To"] = message.to
        email["Subject"] = message.subject
        # A stable Message-ID: a retry after a crash is recognisable as the same message.
        email["Message-ID"] = message.message_id
        if reply_to:
            email["Reply-To"] = reply_to
        email.set_content(message.body)
        for filename, mimetype, content in message.attachments:
            maintype, _, subtype = mimetype.partition("/")
            email.add_attachment(
                content.encode(), maintype=maintype, subtype=subtype, filename=filename
            )
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"SMTP: {error}") from error
        return message.message_id


class LoggingEmail:
    """Email written to the log instead of sent: the embedded default."""

    def send(self, message: Outgoing, sender: str, reply_to: str | None) -> str:
        log.info("email to %s: %s", message.to, message.subject)
        return message.message_id


class TwilioSms:
    """SMS through Twilio's Messages API."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str | None = None,
        timeout: float = 10,
    ) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        # Twilio's client waits forever by default; the outbox worker must not.
        self.client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
        if base_url:
            self.client.api.base_url = base_url
        self.from_number = from_number

    def send(self, to: str, body: str) -> str:
        from twilio.base.exceptions import TwilioException

        try:
            sent = self.client.messages.create(to=to, from_=self.from_number, body=body)
        except (TwilioException, OSError) as error:
            raise DeliveryError(f"Twilio: {error}") from error
        return sent.sid


class LoggingSms:
    """SMS written to the log instead of sent: the embedded default."""

    def send(self, to: str, body: str) -> str:
        log.info("sms to %s: %s", to, body)
        return "logged"


def make_message_id(domain: str, key: str, *, clinic_id: int) -> str:
    """Return a Message-ID derived from the clinic and the outbox key, the same on every attempt.

    A message sent again after its first answer was lost must read as the same
    message to the receiver, so nothing in it is random or timed (``make_msgid``
    adds both). Keys are unique within a clinic, so the clinic's id makes them
    unique on the instance.
    """
    local = re.sub(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]", ".", key).strip(".")[:120]
    return f"<{local}.{clinic_id}@{domain}>"


def install(app: Flask) -> None:
    """Choose the email and SMS channels from configuration."""
    config = app.config
    if config.get("SMTP_HOST"):
        email: Any = SmtpEmail(
            config["SMTP_HOST"],
            int(config.get("SMTP_PORT", 25)),
            config.get("SMTP_USERNAME"),
            config.get("SMTP_PASSWORD"),
            bool(config.get("SMTP_STARTTLS")),
            timeout=float(config.get("SMTP_TIMEOUT", 10)),
        )
    else:
        email = LoggingEmail()
    if config.get("TWILIO_ACCOUNT_SID"):
        sms: Any = TwilioSms(
            config["TWILIO_ACCOUNT_SID"],
            config["TWILIO_AUTH_TOKEN"],
            config["TWILIO_FROM_NUMBER"],
            config.get("TWILIO_BASE_URL"),
            timeout=float(config.get("SMS_TIMEOUT", 10)),
        )
    else:
        sms = LoggingSms()
    app.extensions["clinic_saas.email"] = email
    app.extensions["clinic_saas.sms"] = sms


def email_sender() -> EmailSender:
    return current_app.extensions["clinic_saas.email"]


def sms_sender() -> SmsSender:
    return current_app.extensions["clinic_saas.sms"]
