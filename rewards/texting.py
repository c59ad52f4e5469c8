"""Texts as people write them: the carriers' keywords, and what we text back. Pure, no I/O.

A keyword is the first word of the text, read the way a person means it: the text is
Unicode-normalized (NFKC, so a full-width `ＳＴＯＰ` is `STOP`), invisible formatting
characters are dropped, case is ignored, and any punctuation, emoji or spacing around the
words is skipped. So `Stop.`, `STOP please`, `stop all` and `¡Stop!` stop, while `STOPP`,
`S T O P` and `please stop` are not keywords (carriers match the first word too; reading a
sentence's intent is guesswork).

Stop words are the six the CTIA handbook lists (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
QUIT) and the two the FCC's 2024 revocation rule adds (REVOKE, OPT OUT, written either way).
START and UNSTOP restart texts; HELP and INFO ask who is texting and how to stop. YES is
not consent: it answers any question.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import msgspec

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

PROGRAM = "Westique Guest Connect"

_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script: what is around them is not a word


class Keyword(msgspec.Struct, frozen=True):
    kind: Literal["stop", "start", "help"]
    word: str
    """The keyword as carriers name it, in upper case (`OPT OUT` is `OPTOUT`)."""


def keyword_of(body: str) -> Keyword | None:
    """The carrier keyword a text starts with, or None."""
    text = unicodedata.normalize("NFKC", body)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")  # zero-width spaces and joiners
    words = _WORD.findall(text.upper())
    if not words:
        return None
    first = words[0]
    if first == "OPT" and len(words) > 1 and words[1] == "OUT":
        first = "OPTOUT"
    if first in STOP_WORDS:
        return Keyword("stop", first)
    if first in START_WORDS:
        return Keyword("start", first)
    if first in HELP_WORDS:
        return Keyword("help", first)
    return None


class Replies(msgspec.Struct, frozen=True, kw_only=True):
    """What we text back; HELP names the program, how to stop and how to reach Guest Services,
    as the carriers' rules ask of every program."""

    guest_services_phone: str
    guest_services_email: str

    @property
    def stopped(self) -> str:
        return f"{PROGRAM}: you are unsubscribed and will receive no more texts. Reply START to resubscribe."

    @property
    def restarted(self) -> str:
        return (f"{PROGRAM}: you are subscribed to texts again. Msg frequency varies. Msg & data rates may apply. "
                "Reply HELP for help, STOP to stop.")

    @property
    def not_on_the_list(self) -> str:
        return (f"{PROGRAM}: this number has no text subscription to restart. Join at a Westique register or "
                "online. Reply HELP for help.")

    @property
    def help(self) -> str:
        return (f"{PROGRAM}: Westique offers and rewards news by text. Msg frequency varies. Msg & data rates "
                f"may apply. Reply STOP to stop. Guest Services: {self.guest_services_phone}, "
                f"{self.guest_services_email}")
