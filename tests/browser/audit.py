"""What every page and dialog is checked for in a real Chromium: no sideways page scroll, every control inside the
viewport and reachable with Tab, and no axe-core violation in light and dark mode.

axe-core is vendored for the tests only (tests/browser/vendor, from `npm pack axe-core@4.14.1`; MPL-2.0) and run
through Playwright's evaluate, which the page's Content-Security-Policy does not apply to.
"""

from pathlib import Path

from playwright.sync_api import Page

AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe-4.14.1.min.js").read_text(encoding="utf-8")
DESKTOP = {"viewport": {"width": 1440, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}

# The controls of the open modal dialog, else of the page: each visible one, marked with an index for the Tab walk.
MARK_CONTROLS = """() => {
  const scope = document.querySelector("dialog:modal") || document;
  const selector = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, textarea, " +
                   "summary, [tabindex]:not([tabindex='-1'])";
  const controls = [...scope.querySelectorAll(selector)].filter((element) => element.checkVisibility({
    checkOpacity: true, checkVisibilityCSS: true}) && element.tabIndex >= 0 && !element.closest("[inert]"));
  return controls.map((element, index) => {
    element.dataset.auditIndex = String(index);
    element.scrollIntoView({block: "nearest", inline: "nearest"});
    const box = element.getBoundingClientRect();
    return {index, name: (element.getAttribute("aria-label") || element.textContent || element.id || element.name ||
                          element.tagName).trim().slice(0, 60), left: box.left, right: box.right,
            width: box.width, height: box.height, skipLink: element.matches(".skip-link"),
            // A radio group is one Tab stop (arrow keys move inside it): reaching one of its radios reaches all.
            group: element.matches("input[type=radio]") ? "radio:" + element.name : null};
  });
}"""
ACTIVE_INDEX = "document.activeElement && document.activeElement.dataset.auditIndex || null"
RUN_AXE = """() => axe.run(document, {resultTypes: ["violations"]}).then((result) => result.violations.map(
  (violation) => violation.id + ": " + violation.nodes.slice(0, 3).map((node) => node.target.join(" ")).join(" | ")))"""


def page_width_problem(page: Page) -> str | None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return f"the page is {width} px wide in a {inner} px viewport" if width > inner else None


def controls_outside(page: Page) -> tuple[list[dict], list[str]]:
    """The marked controls, and those (any part of them) outside the viewport's width or of no size."""
    controls = page.evaluate(MARK_CONTROLS)
    inner = page.evaluate("window.innerWidth")
    # The skip link is placed on screen only while it has the focus.
    outside = [f"{c['name']!r} at {c['left']:.0f}–{c['right']:.0f}" for c in controls if not c["skipLink"] and
               (c["left"] < -1 or c["right"] > inner + 1 or c["width"] < 1 or c["height"] < 1)]
    return controls, outside


def unreachable_by_tab(page: Page, controls: list[dict]) -> list[str]:
    """Controls the Tab key never reaches, walking from the top (a modal keeps Tab inside itself)."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.evaluate("window.scrollTo(0, 0)")
    reached: set[str] = set()
    for _ in range(len(controls) * 2 + 10):
        page.keyboard.press("Tab")
        index = page.evaluate(ACTIVE_INDEX)
        if index is not None:
            if index in reached and len(reached) == len(controls):
                break
            reached.add(index)
    reached_groups = {c["group"] for c in controls if c["group"] and str(c["index"]) in reached}
    return [c["name"] for c in controls if str(c["index"]) not in reached and c["group"] not in reached_groups]


def axe_violations(page: Page) -> list[str]:
    """axe-core's violations on the page (an open modal dialog included), in light and then dark mode."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)
    found = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        found += [f"{scheme}: {violation}" for violation in page.evaluate(RUN_AXE)]
    page.emulate_media(color_scheme="light")
    return found


def audit(page: Page, where: str, tab_walk: bool = True) -> list[str]:
    """Every problem found on the page or its open dialog, each naming `where`."""
    problems = []
    width = page_width_problem(page)
    if width:
        problems.append(width)
    controls, outside = controls_outside(page)
    problems += [f"outside the viewport: {name}" for name in outside]
    if tab_walk:
        problems += [f"not reached with Tab: {name}" for name in unreachable_by_tab(page, controls)]
    problems += axe_violations(page)
    return [f"{where}: {problem}" for problem in problems]
