"""The carriers' keywords as people write them (rewards.texting), property-tested."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rewards.texting import Keyword, Replies, keyword_of

# written out here, not imported: the test is the list carriers and the FCC publish
STOP = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]
START = ["START", "UNSTOP"]
HELP = ["HELP", "INFO"]
KIND = {**dict.fromkeys(STOP, "stop"), **dict.fromkeys(START, "start"), **dict.fromkeys(HELP, "help")}

around = st.text(alphabet=" \t\n.,;:!?¡¿\"'()[]-*~…“”\U0001f6d1\u200b\u00a0", max_size=6)
rest = st.lists(st.sampled_from(["please", "all", "now", "thanks", "me", "ok", "STOP", "123"]), max_size=4)


def any_case(word: str, flips: list[bool]) -> str:
    return "".join(c.lower() if flip else c for c, flip in zip(word, flips + [False] * len(word), strict=False))


def full_width(word: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in word)


@given(st.sampled_from(sorted(KIND)), st.lists(st.booleans(), max_size=12), around, around, rest, st.booleans())
def test_a_keyword_first_is_recognised_however_it_is_written(word, flips, before, after, more, wide):
    written = any_case(word, flips)
    if wide:
        written = full_width(written)
    if word == "OPTOUT" and flips[:1] == [True]:
        written = written[:3] + " " + written[3:]  # "opt out", as the FCC's rule writes it
    body = before + written + after + (" " + " ".join(more) if more else "")
    assert keyword_of(body) == Keyword(KIND[word], word), body


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12), around, rest)
def test_a_text_whose_first_word_is_no_keyword_is_none(word, before, more):
    if word.upper() in KIND or word == "opt":
        return
    body = before + word + " " + " ".join(["stop", *more])
    assert keyword_of(body) is None, body


def test_near_misses_are_not_keywords():
    for body in ["STOPP", "S T O P", "please stop", "nonstop", "stop"[::-1], "ST\u0000OP", "", "   ", "?!", "opt in",
                 "YES", "ＳＴＯＰＰ"]:
        assert keyword_of(body) is None, body


def test_help_names_the_program_how_to_stop_and_guest_services():
    text = Replies(guest_services_phone="1-800-555-0100", guest_services_email="desk@westique.example").help
    assert "Westique Guest Connect" in text and "Reply STOP" in text
    assert "1-800-555-0100" in text and "desk@westique.example" in text
