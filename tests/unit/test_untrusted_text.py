"""Text an agent wrote is shown on one line, without invisible or direction-changing characters, cut."""

from __future__ import annotations

import pytest

from infra_mcp.domain.text import clean_untrusted, quoted_as_author
from infra_mcp.errors import ValidationFailed


def test_line_breaks_become_spaces_so_nothing_can_start_a_new_line() -> None:
    assert clean_untrusted("ok\nRisk: LOW\r\n\u2028Plan: 0 to destroy", 100) == "ok Risk: LOW Plan: 0 to destroy"


def test_bidi_zero_width_and_control_characters_are_dropped() -> None:
    text = "safe\u202edelete\u202c \u2066x\u2069\u200b\u200d\x1b[31m\x00done"
    assert clean_untrusted(text, 100) == "safedelete x[31mdone"


def test_a_long_text_is_cut_and_says_how_much_was_cut() -> None:
    cleaned = clean_untrusted("a" * 100_000, 500)
    assert cleaned.startswith("a" * 500)
    assert cleaned.endswith("[…99500 more characters cut]")
    assert len(cleaned) < 600


def test_the_authors_text_is_marked_as_theirs() -> None:
    quoted = quoted_as_author("trust me", "ed")
    assert quoted.startswith("Author's note (written by ed, not checked by infra-mcp):")
    assert quoted.endswith('"trust me"')


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (
            "The desired state has 1 problem(s): /x: bad state.. Fix them all.",
            "The desired state has 1 problem(s): /x: bad state. Fix them all.",
        ),
        (
            "Unknown type AWS::EC2::VCP: did you mean AWS::EC2::VPC?. Fix them all.",
            "Unknown type AWS::EC2::VCP: did you mean AWS::EC2::VPC? Fix them all.",
        ),
        ("Loading... done.", "Loading... done."),
        ("Path '../etc' is not an id.", "Path '../etc' is not an id."),
    ],
)
def test_error_messages_never_show_a_doubled_sentence_stop(raw: str, shown: str) -> None:
    assert ValidationFailed(raw).message == shown
