"""A real SMTP server for tests (aiosmtpd): plain, STARTTLS or SMTPS with trustme certificates, optional AUTH,
and one that refuses (550) recipients or the message."""

import email
import email.policy
import threading
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from servers import free_port


@dataclass
class ReceivedMail:
    mail_from: str
    recipients: list[str]
    message: email.message.EmailMessage
    authenticated: bool

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return self.message.get_content()


@dataclass
class MailHandler:
    """Records what it accepts; `refuse` is "rcpt" or "data" to answer 550 at that step."""

    refuse: str | None = None
    received: list[ReceivedMail] = field(default_factory=list)
    refused: int = 0
    condition: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse == "rcpt":
            with self.condition:
                self.refused += 1
                self.condition.notify_all()
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuse == "data":
            with self.condition:
                self.refused += 1
                self.condition.notify_all()
            return "550 5.7.1 Message refused by policy"
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.condition:
            self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message,
                                              bool(session.authenticated)))
            self.condition.notify_all()
        return "250 Message accepted for delivery"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1: `security` is plain, starttls or tls; `credentials` (user, password)
    makes AUTH required. Its port is chosen up front, so a test can hand out its URL before starting it."""

    def __init__(self, security: str = "plain", server_context=None, credentials: tuple[str, str] | None = None,
                 refuse: str | None = None):
        self.security = security
        self.server_context = server_context
        self.credentials = credentials
        self.handler = MailHandler(refuse)
        self.port = free_port()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        scheme = {"plain": "smtp", "starttls": "smtp+starttls", "tls": "smtps"}[self.security]
        user = f"{self.credentials[0]}:{self.credentials[1]}@" if self.credentials else ""
        return f"{scheme}://{user}127.0.0.1:{self.port}"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        return AuthResult(success=ok)

    def start(self) -> "SmtpServer":
        options = {"hostname": "127.0.0.1", "port": self.port, "server_hostname": "mail.test"}
        if self.security == "starttls":
            options.update(tls_context=self.server_context, require_starttls=True)
        elif self.security == "tls":
            options.update(ssl_context=self.server_context)
        if self.credentials:
            # aiosmtpd only counts STARTTLS as TLS; smtps is TLS from the first byte, so AUTH may go ahead there.
            options.update(authenticator=self.authenticate, auth_required=True,
                           auth_require_tls=self.security != "tls")
        self.controller = Controller(self.handler, **options)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def received(self) -> list[ReceivedMail]:
        with self.handler.condition:
            return list(self.handler.received)

    def wait_for_mail(self, count: int = 1, timeout: float = 30) -> list[ReceivedMail]:
        with self.handler.condition:
            if not self.handler.condition.wait_for(lambda: len(self.handler.received) >= count, timeout=timeout):
                raise AssertionError(f"expected {count} email(s), got {len(self.handler.received)}")
            return list(self.handler.received)

    def wait_for_refusals(self, count: int = 1, timeout: float = 30) -> int:
        with self.handler.condition:
            if not self.handler.condition.wait_for(lambda: self.handler.refused >= count, timeout=timeout):
                raise AssertionError(f"expected {count} refusal(s), got {self.handler.refused}")
            return self.handler.refused
