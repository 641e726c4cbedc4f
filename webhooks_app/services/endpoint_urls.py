"""The rules an endpoint URL must meet before it is saved: HTTPS, percent-encoded, a real DNS name, no credentials."""

import ipaddress
import re
from urllib.parse import urlsplit

import idna

MAX_URL_LENGTH = 2048
MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63
# RFC 3986: unreserved and reserved characters, plus "%" for percent-encoded octets.
LEGAL_URL_CHARACTER = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")
PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
HOST_LABEL_CHARACTER = re.compile(r"[A-Za-z0-9-]")


def describe_character(character: str) -> str:
    if character == " ":
        return "a space"
    if character in "\t\r\n":
        return "a line break or tab"
    if character.isprintable():
        return f"“{character}”"
    return f"the character U+{ord(character):04X}"


def shortened(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_name_problem(host: str) -> str | None:
    """Explain why a host name is not a DNS name a delivery can resolve, or None."""
    if is_ip_literal(host):
        return None
    name = host[:-1] if host.endswith(".") else host  # a trailing dot names the root: allowed
    if len(name) > MAX_HOST_LENGTH:
        return f"The host name is {len(name):,} characters long; the limit is {MAX_HOST_LENGTH}."
    for label in name.split("."):
        if not label:
            return f"The host name “{shortened(host)}” has an empty part between dots."
        if len(label) > MAX_LABEL_LENGTH:
            return (f"The host name part “{shortened(label)}” is {len(label)} characters long; each part between "
                    f"dots can be at most {MAX_LABEL_LENGTH}.")
        for character in label:
            if not HOST_LABEL_CHARACTER.fullmatch(character):
                return (f"The host name contains {describe_character(character)}: host names use letters, digits "
                        "and hyphens only (write an internationalized name in its xn-- form).")
        if label.startswith("-") or label.endswith("-"):
            return f"The host name part “{shortened(label)}” starts or ends with a hyphen."
        if label.lower().startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError as error:
                return f"The host name part “{shortened(label)}” is not a valid internationalized name ({error})."
    return None


def endpoint_url_problem(url: str) -> str | None:
    """Explain what is wrong with an endpoint URL, or return None when it is acceptable."""
    if len(url) > MAX_URL_LENGTH:
        return f"The URL is {len(url):,} characters long; the limit is {MAX_URL_LENGTH:,}."
    for position, character in enumerate(url, start=1):
        if not LEGAL_URL_CHARACTER.fullmatch(character):
            return (
                f"The URL contains {describe_character(character)} at position {position}. "
                "Special characters must be percent-encoded (a space is %20)."
            )
    if PERCENT_ESCAPE.search(url):
        return "The URL has a “%” that is not followed by two hexadecimal digits; write a literal % as %25."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as error:
        return f"The URL cannot be read: {error}."
    if parts.scheme.lower() != "https":
        return "HTTPS is required: the endpoint URL must start with https://."
    if parts.port == 0:
        return "The URL's port is 0, which no server listens on: give a port from 1 to 65535, or none for 443."
    if "@" in parts.netloc:
        return ("The URL contains a user name or password (before “@”). Endpoint URLs may not carry credentials: "
                "every message carries the webhook's secret for the endpoint to check.")
    if not parts.hostname:
        return "The URL has no host name: write it as https://host.example/path."
    return host_name_problem(parts.hostname)
