"""How long a text is on each channel, and how to split one that is too long. Pure functions.

SMS (3GPP TS 23.038 / 23.040): a body made only of GSM-7 characters is sent in 7-bit septets, 160 in one
segment; a character of the extension table (``€ [ ] { } ^ ~ | \\`` and form feed) takes two (an escape and
itself). Any other character makes the whole body UCS-2: UTF-16 code units, 70 in one segment (so an emoji
outside the Basic Multilingual Plane, a surrogate pair, takes two). A longer body is sent as a concatenated
message whose segments each lose room to the concatenation header: 153 septets or 67 code units. An escape
and its character, or the two halves of a surrogate pair, are never separated across segments, so a
segment may hold one unit less than its room.

Policy: a body of up to ``max_segments`` segments (10 by default, as Twilio recommends; Twilio refuses
bodies over 1600 characters) goes as ONE concatenated message; a longer one is split into several
messages, each within that limit (``split_sms``). WhatsApp takes text bodies of up to 4096 characters,
counted here in UTF-16 code units, the stricter reading (``split_whatsapp_text``).

Splitting prefers, in this order, the last paragraph break, line break, sentence end, then word boundary
that keeps a part at least half full; with none, it cuts at the limit, though never inside a surrogate
pair, between a character and the combining marks, variation selectors or skin-tone modifiers that
follow it, nor after a zero-width joiner. Whitespace at a cut is dropped; nothing else is.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "GSM7",
    "SMS_MAX_SEGMENTS",
    "TWILIO_MAX_BODY_CHARS",
    "UCS2",
    "WHATSAPP_TEXT_LIMIT",
    "SmsCount",
    "count_sms",
    "is_gsm7",
    "sms_segments",
    "split_sms",
    "split_text",
    "split_whatsapp_text",
    "utf16_len",
]

GSM7: Final = "GSM-7"
UCS2: Final = "UCS-2"
Encoding = Literal["GSM-7", "UCS-2"]

SMS_MAX_SEGMENTS: Final = 10
TWILIO_MAX_BODY_CHARS: Final = 1600
WHATSAPP_TEXT_LIMIT: Final = 4096

# The GSM 03.38 default alphabet (0x1B, the escape, is no character of its own) and its extension table.
GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION: Final = frozenset("\f^{}\\[~]|€")
_GSM_ALL: Final = GSM_BASIC | GSM_EXTENSION

_SINGLE = {GSM7: 160, UCS2: 70}
_MULTI = {GSM7: 153, UCS2: 67}


@dataclass(frozen=True)
class SmsCount:
    """An SMS body measured: its encoding, its length in units of that encoding (septets, or UTF-16 code
    units) and the number of segments it is sent in (0 for an empty body)."""

    encoding: Encoding
    units: int
    segments: int


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in the GSM-7 alphabet or its extension table."""
    return _GSM_ALL.issuperset(text)


def utf16_len(text: str) -> int:
    """``text``'s length in UTF-16 code units: 2 for a character outside the Basic Multilingual Plane."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def count_sms(text: str) -> SmsCount:
    """The encoding, length and number of segments of ``text`` sent as one (concatenated) SMS."""
    if is_gsm7(text):
        encoding: Encoding = GSM7
        units = len(text) + sum(text.count(c) for c in GSM_EXTENSION)
    else:
        encoding = UCS2
        units = utf16_len(text)
    if units == 0:
        return SmsCount(encoding, 0, 0)
    if units <= _SINGLE[encoding]:
        return SmsCount(encoding, units, 1)
    room = _MULTI[encoding]
    if units == len(text):  # no two-unit character: the segments simply fill up
        return SmsCount(encoding, units, -(-units // room))
    double = GSM_EXTENSION.__contains__ if encoding == GSM7 else _astral
    segments, used = 1, 0
    for char in text:  # a two-unit character never straddles two segments
        width = 2 if double(char) else 1
        if used + width > room:
            segments += 1
            used = 0
        used += width
    return SmsCount(encoding, units, segments)


def _astral(char: str) -> bool:
    return ord(char) > 0xFFFF


def sms_segments(text: str) -> int:
    """The number of segments ``text`` is sent in as one SMS (0 for ``""``)."""
    return count_sms(text).segments


def split_sms(text: str, *, max_segments: int = SMS_MAX_SEGMENTS, max_chars: int = TWILIO_MAX_BODY_CHARS) -> list[str]:
    """The SMS messages to send for ``text``: ``[text]`` when it is within ``max_segments`` segments and
    ``max_chars`` characters (UTF-16 code units), else parts each within both limits (each part's encoding
    is its own: a part without the emoji that made the whole text UCS-2 is GSM-7). ``[]`` for ``""``."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    if max_chars < 2:
        raise ValueError("max_chars must be at least 2")

    def fits(part: str) -> bool:
        return utf16_len(part) <= max_chars and count_sms(part).segments <= max_segments

    return split_text(text, fits)


def split_whatsapp_text(text: str, *, limit: int = WHATSAPP_TEXT_LIMIT) -> list[str]:
    """The WhatsApp text messages to send for ``text``: ``[text]`` when it is at most ``limit`` UTF-16 code
    units long, else parts each within the limit. ``[]`` for ``""``."""
    if limit < 2:
        raise ValueError("limit must be at least 2 (a character outside the BMP takes 2)")
    return split_text(text, lambda part: utf16_len(part) <= limit)


# ------------------------------------------------------------------------------------------------ splitting

# Where a part may end, best first; a part ends where the match says (``_ENDS_AT_START``: at its start, so
# the whitespace of the break goes with the cut; else at its end, after the punctuation).
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n")
_LINE = re.compile(r"\n")
# A sentence ends with . ! ? or an ellipsis (maybe followed by closing quotes or brackets) before whitespace,
# or with a CJK full stop, exclamation or question mark (no space follows those).
_SENTENCE = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d)\]]*(?=\s)|[\u3002\uff01\uff1f]+")
_SPACE = re.compile(r"\s")
_BOUNDARIES = ((_PARAGRAPH, True), (_LINE, True), (_SENTENCE, False))


def split_text(text: str, fits: Callable[[str], bool]) -> list[str]:
    """``text`` in parts that each satisfy ``fits`` (which must hold for every prefix of a part it holds for,
    and for any single character), cut at the best boundary; ``[text]`` if it fits whole, ``[]`` if empty.

    Joining the parts with whitespace gives the text back, except for the whitespace at the cuts (and at
    the ends of a text that is split)."""
    if not text:
        return []
    if fits(text):
        return [text]  # as it is, whitespace and all
    parts: list[str] = []
    rest = text.strip()  # the parts of a split text neither begin nor end with whitespace
    while rest:
        if fits(rest):
            parts.append(rest)
            break
        limit = _longest_fitting_prefix(rest, fits)
        cut = _cut(rest, limit)
        part = rest[:cut].rstrip()
        if part:
            parts.append(part)
        rest = rest[cut:].lstrip()
    return parts


def _longest_fitting_prefix(text: str, fits: Callable[[str], bool]) -> int:
    """The largest n with ``fits(text[:n])``: fitting is monotone in the prefix, so a galloping search (the
    bounds double until one does not fit) then a binary one; it looks at prefixes about as long as the part,
    not at the whole rest of a long text."""
    low, high = 0, 1
    while high < len(text) and fits(text[:high]):
        low, high = high, min(high * 2, len(text))
    if high == len(text) and fits(text):
        return high
    # fits(text[:low]) holds (for low == 0, the empty prefix), fits(text[:high]) does not
    while high - low > 1:
        middle = (low + high) // 2
        if fits(text[:middle]):
            low = middle
        else:
            high = middle
    if low == 0:
        raise ValueError("the limit is too small for a single character")
    return low


def _cut(text: str, limit: int) -> int:
    """Where to end a part that may take at most ``text[:limit]``: at the last paragraph break, line break
    or sentence end that leaves it at least half full, else at the last whitespace, else at a place near
    the limit that splits no character. (One character more is searched, so that a break right after the
    limit counts.) Never where the part would be blank."""
    window = text[: limit + 1]

    def usable(cut: int) -> bool:
        return 0 < cut <= limit and bool(window[:cut].strip())

    for boundary, at_start in _BOUNDARIES:
        cuts = [m.start() if at_start else m.end() for m in boundary.finditer(window)]
        best = max((c for c in cuts if usable(c)), default=0)
        if best * 2 >= limit:
            return best
    best = max((m.start() for m in _SPACE.finditer(window) if usable(m.start())), default=0)
    if best:
        return best
    return _safe_cut(text, limit)


def _safe_cut(text: str, at: int) -> int:
    """``at``, or the nearest earlier index that does not split a character from what belongs to it (with
    none, ``at`` all the same)."""
    cut = at
    while cut > 0 and _inside_character(text, cut):
        cut -= 1
    return cut or at


def _inside_character(text: str, index: int) -> bool:
    """Whether a cut before ``text[index]`` would break a user-perceived character."""
    before, after = text[index - 1], text[index]
    if before == "\u200d" or after == "\u200d":  # zero-width joiner
        return True
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":  # a pair left as two code points
        return True
    code = ord(after)
    if 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:  # variation selectors
        return True
    if 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:  # skin-tone modifiers, tags (flags)
        return True
    if _regional(after) and _regional(before):  # flags are pairs of regional indicators
        run = 0
        while index - 1 - run >= 0 and _regional(text[index - 1 - run]):
            run += 1
        return run % 2 == 1
    return unicodedata.category(after) in ("Mn", "Me", "Mc")


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF
