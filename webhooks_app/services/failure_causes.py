"""Why deliveries fail, in words: the likely cause per kind of error (the document's four scenarios and ours),
the retry ladder's length, and the reason a 410 Gone disables a webhook."""

from flask import current_app

LIKELY_CAUSES = {
    "dns": "Likely cause: an invalid endpoint URL or a typo (the host name could not be resolved).",
    "timeout": "Likely cause: a temporary network error, or the endpoint did not respond within {timeout:g} seconds.",
    "refused": "Likely cause: the endpoint server is not accepting connections.",
    "connection": "Likely cause: the endpoint server is not accepting connections.",
    "tls": "Likely cause: the endpoint is not configured to use HTTPS, or there is a certificate problem.",
    "forbidden_address": "Likely cause: the endpoint URL points to a private or reserved address, "
                         "which deliveries may not reach.",
    "redirect": "Likely cause: the endpoint redirects instead of answering; use the final URL.",
    "http_status": "Likely cause: the endpoint answered with an error instead of a 2xx status.",
    "unexpected": "Likely cause: an error in this service while sending; its log has the details.",
}
GONE_STATUS = 410
GONE_REASON = "The endpoint answered 410 Gone: it asked not to receive more messages."
# A 429 or 503 answer's Retry-After delays the next attempt, at most this long.
MAX_RETRY_AFTER_SECONDS = 24 * 3600


def total_attempts() -> int:
    """Attempts a message gets: the first plus one per WEBHOOKS_RETRY_DELAYS entry."""
    return 1 + len(current_app.config["WEBHOOKS_RETRY_DELAYS"])


def likely_cause(error_kind: str | None, status_code: int | None = None) -> str:
    """The sentence naming the likely cause of a failed attempt of this kind."""
    if status_code == GONE_STATUS:
        return GONE_REASON
    template = LIKELY_CAUSES.get(error_kind or "", LIKELY_CAUSES["connection"])
    return template.format(timeout=current_app.config["WEBHOOKS_TIMEOUT_SECONDS"])


def wait_words(seconds: float) -> str:
    """A wait in the largest unit that keeps it readable: 45 s, 5 min, 2 h 30 min, 24 h."""
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
