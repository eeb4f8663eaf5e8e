"""What the headless-browser tests of accounts share: the two screen sizes, a watched page
(a script error or a Content-Security-Policy refusal fails the test), logging in through the
login page in a chosen language, and the checks every Chinese page must pass (no English
visible, no sideways scrolling)."""

from __future__ import annotations

from dataclasses import dataclass, field

from latin_scan import english_on_page

from conftest import ADMIN_PASSWORD

DESKTOP = {"viewport": {"width": 1366, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}


@dataclass
class WatchedPage:
    """A browser context with one page, and what went wrong on it so far."""

    context: object
    page: object
    problems: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.page.viewport_size["width"]

    def close(self) -> list[str]:
        self.context.close()
        return self.problems


def watched_page(browser, base_url: str, options: dict) -> WatchedPage:
    context = browser.new_context(base_url=base_url, **options)
    watched = WatchedPage(context, context.new_page())
    watched.page.on("pageerror", lambda error: watched.problems.append(f"script error: {error}"))
    watched.page.on(
        "console",
        lambda m: watched.problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return watched


def log_in(page, username: str, password: str, language: str = "zh_CN") -> None:
    """Through the login page, in ``language``; waits for the page the login leads to."""
    page.goto("/login")
    if page.get_attribute(f"form.lang button[value={language}]", "aria-pressed") != "true":
        page.click(f"form.lang button[value={language}]")
        page.wait_for_load_state()
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button.primary")


def admin_page(browser, base_url: str, phone: bool = False) -> WatchedPage:
    """A watched page logged in as the admin, on a phone (390x844) or a desktop (1366x900),
    on the page the login leads to."""
    watched = watched_page(browser, base_url, PHONE if phone else DESKTOP)
    log_in(watched.page, "admin", ADMIN_PASSWORD)
    watched.page.wait_for_url("**/screenings/new")
    return watched


def assert_no_sideways_scroll(page) -> None:
    """The page is no wider than the screen; if it is, the message names the elements that
    stick out (a page that scrolls sideways misplaces every tap)."""
    wide = page.evaluate(
        "Array.from(document.querySelectorAll('main *'))"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 2)"
        ".map(e => e.tagName + '.' + e.className).slice(0, 8)"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"], (
        wide
    )


def scroll_width(page) -> int:
    return page.evaluate("document.scrollingElement.scrollWidth")


def chinese_page_problems(page, allowed: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with a zh_CN page as shown: English words, or a page wider than the
    screen (sideways scrolling)."""
    problems = [f"English: {word}" for word in english_on_page(page, allowed)]
    width = page.viewport_size["width"]
    if (wide := scroll_width(page)) > width:
        problems.append(f"{page.url} is {wide} px wide at {width} px")
    return problems
