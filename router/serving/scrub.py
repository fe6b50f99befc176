"""What an error text may carry out of the process: no known secret and no quote of the prompt.

Upstream errors quote what they were sent: a provider's key, the prompt. Those errors become
attempts, reasons, trace spans and decision-log rows (a fallback's reason, a failed stream's
error), in the proxy and the SDK alike, so both scrub them here, the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def quotes_of(texts: Iterable[str], shortest: int = 8) -> list[str]:
    """The texts worth hiding, longest first (a shorter one may be part of a longer one)."""
    return sorted({t for t in texts if len(t) >= shortest}, key=len, reverse=True)


def hide_quote(text: str, quote: str, head: int = 32) -> str:
    """Replace every quote of `quote` in `text`, whole or cut short (errors truncate), by
    "[prompt]": a quote is found by its first `head` characters and runs as far as it keeps
    matching."""
    key = quote[:head]
    start = text.find(key)
    while start != -1:
        end = start + len(key)
        while end < len(text) and end - start < len(quote) and text[end] == quote[end - start]:
            end += 1
        text = text[:start] + "[prompt]" + text[end:]
        start = text.find(key, start + len("[prompt]"))
    return text


def scrubber(
    redact: Callable[[str], str], quotes: Iterable[str] = ()
) -> Callable[[str | None], str | None]:
    """`redact` (secrets hidden), then every quote of `quotes` hidden; None stays None."""
    hidden = quotes_of(quotes)

    def scrub(text: str | None) -> str | None:
        if text is None:
            return None
        text = redact(text)
        for q in hidden:
            text = hide_quote(text, q)
        return text

    return scrub
