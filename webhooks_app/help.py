"""Help pages read from README.md, so the administrators' documentation is written once."""

import re
from dataclasses import dataclass
from functools import cache

from markupsafe import Markup, escape

from .config import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)]+)\)")


@dataclass(frozen=True)
class Block:
    kind: str  # "p" or "ul"
    items: tuple[Markup, ...]


def inline_markup(text: str) -> Markup:
    """Markdown's code spans, bold and links as HTML; everything else escaped."""
    parts, position = [], 0
    for match in INLINE.finditer(text):
        parts.append(escape(text[position:match.start()]))
        code, bold, label, href = match.groups()
        if code is not None:
            parts.append(Markup("<code>{}</code>").format(code))
        elif bold is not None:
            parts.append(Markup("<strong>{}</strong>").format(bold))
        elif href.startswith("#"):
            parts.append(escape(label))  # a link to another README section: its words only
        else:
            parts.append(Markup('<a href="{}">{}</a>').format(href, label))
        position = match.end()
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


@cache
def readme_section(title: str) -> tuple[Block, ...]:
    """The paragraphs and bullet lists of the README's `## title` section."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"## {title}") + 1
    body = []
    for line in lines[start:]:
        if line.startswith("## "):
            break
        body.append(line)
    blocks: list[Block] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Block("p", (inline_markup(" ".join(paragraph)),)))
            paragraph.clear()
        if items:
            blocks.append(Block("ul", tuple(inline_markup(item) for item in items)))
            items.clear()

    for line in body:
        if line.startswith("- "):
            if paragraph:
                flush()
            items.append(line[2:].strip())
        elif line.startswith("  ") and items:
            items[-1] += " " + line.strip()
        elif not line.strip():
            flush()
        else:
            if items:
                flush()
            paragraph.append(line.strip())
    flush()
    return tuple(blocks)
