"""English left on a Chinese page: the rendered, visible text of a Playwright page, and the
Latin words in it that are not on the allow-list (units, the instruments' and tests' own
abbreviations, IDs and numbers)."""

from __future__ import annotations

import re

# the abbreviations a Chinese clinical page writes in Latin letters, as Chinese clinicians do
ALLOWED_WORDS = frozenset(
    {
        # units
        "kg",
        "cm",
        "mm",
        "m",
        "HU",
        "MB",
        "g",
        # tests, instruments and bands Chinese clinicians name in Latin letters
        "DXA",
        "OSTA",
        "OST",
        "BMI",
        "WHO",
        "IOF",
        "CT",
        "X",
        "T",
        "Z",
        "DICOM",
        "PNG",
        "JPEG",
        "TIFF",
        "CSV",
        "PDF",
        "L",  # vertebral levels: L1-L4, T12
        "A4",
        # the product's own name in the top bar, and the language button
        "edgeosteo",
        "English",
    }
)
# an ID, accession or level: letters and digits together (ZY77001, ACC-DXA-1, RG1, L1),
# or initials with dots (C.R.)
IDENTIFIER = re.compile(r"^(?=.*\d)[A-Za-z0-9][A-Za-z0-9._\-/…]*$|^(?:[A-Z]\.)+[A-Z]?$")
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/…]*")

# every text node a user can see: not hidden, not in a closed <details>, not a <script>;
# input values and placeholders, and the labels of <option>s in a closed <select> too
VISIBLE_TEXT = """
() => {
  const parts = [];
  const seen = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const style = getComputedStyle(e);
      if (style.display === 'none' || style.visibility === 'hidden') return false;
      if (e.tagName === 'DETAILS' && !e.open && e !== el) {
        const summary = e.querySelector(':scope > summary');
        if (!(summary && summary.contains(el))) return false;
      }
    }
    return true;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    const skipped = ['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'OPTION'];
    if (!parent || skipped.includes(parent.tagName)) continue;
    if (node.textContent.trim() && seen(parent)) parts.push(node.textContent);
  }
  for (const el of document.querySelectorAll('input, textarea, select')) {
    if (!seen(el) || el.type === 'hidden' || el.type === 'password') continue;
    if (el.tagName === 'SELECT') {
      for (const option of el.options) parts.push(option.textContent);
    } else if (el.type === 'file') {
      continue;  // the browser draws its own chooser: see native_file_chooser_visible
    } else if (el.type !== 'checkbox' && el.type !== 'radio') {
      if (el.placeholder) parts.push(el.placeholder);
    }
  }
  for (const el of document.querySelectorAll('[title], img[alt]')) {
    if (seen(el)) parts.push(el.getAttribute('title') || el.getAttribute('alt') || '');
  }
  parts.push(document.title);
  return parts.join('\\n');
}
"""


def visible_text(page) -> str:
    """The text a user can see (or hear read out: titles, image descriptions) on the page."""
    return page.evaluate(VISIBLE_TEXT)


def latin_words(text: str, allowed: frozenset[str] = ALLOWED_WORDS) -> list[str]:
    """The Latin words in the text that are neither allowed nor an ID or a number."""
    found = []
    for match in LATIN_WORD.finditer(text):
        word = match.group(0).rstrip("._-/…")
        if not word or word in allowed or IDENTIFIER.match(word) or IDENTIFIER.match(match[0]):
            continue
        found.append(word)
    return found


def english_on_page(page, extra_allowed: frozenset[str] = frozenset()) -> list[str]:
    """The Latin words on the rendered page outside the allow-list, in order, once each."""
    words = latin_words(visible_text(page), ALLOWED_WORDS | extra_allowed)
    return list(dict.fromkeys(words))


def native_file_chooser_visible(page) -> bool:
    """Whether a browser-drawn file chooser ("Choose File / No file chosen" in the
    browser's own language) is on screen."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('input[type=file]')).some(el => {
            const box = el.getBoundingClientRect();
            const style = getComputedStyle(el);
            return box.width > 2 && box.height > 2 && style.visibility !== 'hidden'
                && style.display !== 'none' && style.opacity !== '0';
        })"""
    )
