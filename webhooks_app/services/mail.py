"""Email through an SMTP server (stdlib smtplib and email): MAIL_URL's server, MAIL_FROM's sender, to every
administrator plus WEBHOOKS_NOTIFY_EMAILS."""

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app
from sqlalchemy import select

from ..config import MailServer, parse_mail_url
from ..extensions import db
from ..models import User

SMTP_TIMEOUT_SECONDS = 20
MAX_SUBJECT_CHARACTERS = 200


class MailRefused(Exception):
    """The mail server refused the message for good (a 5xx answer): sending it again would not help."""


def mail_configured() -> bool:
    """Whether notifications go out by email (MAIL_URL is set); otherwise they are only logged."""
    return bool(current_app.config.get("MAIL_URL"))


def recipients() -> list[str]:
    """Every administrator's address plus WEBHOOKS_NOTIFY_EMAILS, each once (compared without case)."""
    addresses = list(db.session.scalars(select(User.email).where(User.is_admin.is_(True)).order_by(User.id)))
    addresses += current_app.config["WEBHOOKS_NOTIFY_EMAILS"]
    seen, unique = set(), []
    for address in addresses:
        if address.casefold() not in seen:
            seen.add(address.casefold())
            unique.append(address)
    return unique


def one_line(text: str, limit: int = MAX_SUBJECT_CHARACTERS) -> str:
    """Text safe for a header: control characters (a line break could add headers) become spaces; capped."""
    cleaned = "".join(" " if ord(character) < 32 or ord(character) == 127 else character for character in text)
    return cleaned if len(cleaned) <= limit else cleaned[:limit - 1] + "…"


def build_message(subject: str, body: str, to: list[str]) -> EmailMessage:
    """A plain-text UTF-8 email from MAIL_FROM."""
    message = EmailMessage()
    message["Subject"] = one_line(subject)
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=current_app.config["MAIL_FROM"].rpartition("@")[2])
    message.set_content(body)
    return message


def tls_context() -> ssl.SSLContext:
    """A verifying TLS context for the mail server; MAIL_CA_BUNDLE adds a CA (a private mail server's)."""
    context = ssl.create_default_context()
    if current_app.config.get("MAIL_CA_BUNDLE"):
        context.load_verify_locations(cafile=current_app.config["MAIL_CA_BUNDLE"])
    return context


def connect(server: MailServer) -> smtplib.SMTP:
    """An SMTP session with MAIL_URL's server: TLS from the start (smtps) or upgraded by STARTTLS, then AUTH."""
    if server.security == "tls":
        smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS, context=tls_context())
    else:
        smtp = smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS)
    try:
        if server.security == "starttls":
            smtp.starttls(context=tls_context())
        if server.username:
            smtp.login(server.username, server.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def is_permanent(error: smtplib.SMTPException) -> bool:
    """A 5xx answer (refused recipients, sender, data or credentials) will not change by trying again."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


def send_mail(subject: str, body: str, to: list[str]) -> dict:
    """Send one email to `to`; returns the recipients the server refused (others got it).

    Raises MailRefused when the server refused it for good, and OSError or smtplib.SMTPException when it
    may work later (server down, 4xx answers): the caller tries again then.
    """
    server = parse_mail_url(current_app.config["MAIL_URL"])
    message = build_message(subject, body, to)
    try:
        with connect(server) as smtp:
            return smtp.send_message(message)
    except smtplib.SMTPException as error:
        if is_permanent(error):
            raise MailRefused(describe(error)) from None
        raise


def describe(error: BaseException) -> str:
    """An SMTP error in one line, without credentials (smtplib's errors never carry the password)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = error.recipients.items()
        return "every recipient was refused: " + "; ".join(
            f"{address} ({code} {reply.decode(errors='replace')})" for address, (code, reply) in refused)
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else error.smtp_error
        return f"{error.smtp_code} {reply}"
    return f"{type(error).__name__}: {error}"
