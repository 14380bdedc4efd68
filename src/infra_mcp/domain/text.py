"""Text from an untrusted author (an agent, a plan's description), made safe to show a person.

A plan's author is often an agent that may have been misled by what it read. Whatever it writes
is shown to the person who approves, so it must not be able to pass itself off as the server's
own words: no line breaks to fake a new paragraph, no bidi or zero-width characters to make text
read differently from what it is, and no length to push the real facts out of sight.
"""

from __future__ import annotations

import unicodedata

# Documented limits (README, "Approval"): enforced at the tool boundary and again wherever the
# text is shown, so a row written some other way cannot grow the prompt either.
DESCRIPTION_MAX = 2000
COMMENT_MAX = 1000
PROMPT_AUTHOR_TEXT_MAX = 500

# Categories removed outright: controls (Cc), format characters (Cf: bidi embeddings and
# isolates, zero-width joiners, BOM), line/paragraph separators, surrogates and unassigned.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_BREAKS = frozenset("\n\r\t\v\f\u0085\u2028\u2029")


def clean_untrusted(text: str, limit: int) -> str:
    """``text`` on one line, without control, format or bidi characters, cut to ``limit``.

    Line breaks and tabs become spaces (then runs of spaces collapse to one), every other
    invisible or direction-changing character is dropped, and a text longer than ``limit``
    ends with a note saying how much was cut.
    """
    kept: list[str] = []
    for char in text:
        if char in _BREAKS:
            kept.append(" ")
        elif unicodedata.category(char) not in _DROPPED:
            kept.append(char)
    cleaned = " ".join("".join(kept).split())
    if len(cleaned) <= limit:
        return cleaned
    cut = len(cleaned) - limit
    return f"{cleaned[:limit].rstrip()} […{cut} more characters cut]"


def quoted_as_author(text: str, author: str, limit: int = PROMPT_AUTHOR_TEXT_MAX) -> str:
    """The author's text, cleaned, cut and marked as theirs (never the server's)."""
    who = clean_untrusted(author, 128)
    return f'Author\'s note (written by {who}, not checked by infra-mcp): "{clean_untrusted(text, limit)}"'
