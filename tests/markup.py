"""HTML assertions through a real parser (BeautifulSoup on the stdlib html.parser), not substrings of markup."""

from bs4 import BeautifulSoup, Tag


def parse(source) -> BeautifulSoup:
    """A response's body, a string of HTML or an already parsed element, as a parsed tree."""
    if isinstance(source, Tag):
        return source
    text = source if isinstance(source, str) else source.get_data(as_text=True)
    tree = BeautifulSoup(text, "html.parser")
    # htmx swaps the rows a <template> wraps (table rows cannot stand alone in a fragment); a parser keeps a
    # template's content apart from the document, so put it in the template's place as htmx does.
    for template in tree.find_all("template"):
        template.replace_with(*list(BeautifulSoup(template.decode_contents(), "html.parser").contents))
    return tree


def select_all(source, selector: str) -> list[Tag]:
    """Every element matching a CSS selector, in document order."""
    return parse(source).select(selector)


def select_one(source, selector: str) -> Tag:
    """The one element matching a CSS selector; fails naming the selector when there is none or several."""
    found = select_all(source, selector)
    assert len(found) == 1, f"{selector!r} matched {len(found)} elements"
    return found[0]


def root(source) -> Tag:
    """The first top-level element of a fragment: the element HTMX swaps."""
    return next(child for child in parse(source).children if isinstance(child, Tag))


def is_full_page(source) -> bool:
    """True for a whole document (an <html> element), False for a fragment."""
    return parse(source).find("html") is not None


def text_of(source) -> str:
    """The text a reader sees, with whitespace runs collapsed to single spaces."""
    return " ".join(parse(source).get_text(" ").split())


def texts(source, selector: str) -> list[str]:
    """The text of every element matching a selector."""
    return [text_of(element) for element in select_all(source, selector)]


def named(source, selector: str, text: str) -> Tag:
    """The one element matching a selector whose text reads exactly `text` (a link or button by its name)."""
    found = [element for element in select_all(source, selector) if text_of(element) == text]
    assert len(found) == 1, f"{len(found)} {selector!r} elements read {text!r}"
    return found[0]


def inherited(element: Tag, attribute: str) -> str | None:
    """An attribute's value as htmx inherits it: from the element itself or its nearest ancestor that has it."""
    for candidate in (element, *element.parents):
        if isinstance(candidate, Tag) and candidate.has_attr(attribute):
            return candidate[attribute]
    return None
