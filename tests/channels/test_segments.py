"""SMS segment counting, the SMS splitting policy and WhatsApp's 4096-character split."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.twilio_server import sms_segments_as_twilio_counts
from threadline.channels.segments import (
    GSM7,
    UCS2,
    SmsCount,
    count_sms,
    is_gsm7,
    sms_segments,
    split_sms,
    split_text,
    split_whatsapp_text,
    utf16_len,
)

EXTENSION = "€[]{}^~|\\\f"
BASIC_SPECIALS = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r"

# ============================================================================================== counting


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsCount(GSM7, 0, 0)),
        ("a", SmsCount(GSM7, 1, 1)),
        ("a" * 160, SmsCount(GSM7, 160, 1)),
        ("a" * 161, SmsCount(GSM7, 161, 2)),
        ("a" * 306, SmsCount(GSM7, 306, 2)),
        ("a" * 307, SmsCount(GSM7, 307, 3)),
        ("a" * 1530, SmsCount(GSM7, 1530, 10)),
        ("a" * 1531, SmsCount(GSM7, 1531, 11)),
        ("€" * 80, SmsCount(GSM7, 160, 1)),
        ("€" * 81, SmsCount(GSM7, 162, 2)),
        ("a" * 159 + "€", SmsCount(GSM7, 161, 2)),
        # the escape and the € stay in one segment: 152 + (2 + 151) + 1
        ("a" * 152 + "€" + "a" * 152, SmsCount(GSM7, 306, 3)),
        ("a" * 151 + "€" + "a" * 153, SmsCount(GSM7, 306, 2)),
        ("á" * 70, SmsCount(UCS2, 70, 1)),
        ("á" * 71, SmsCount(UCS2, 71, 2)),
        ("á" * 134, SmsCount(UCS2, 134, 2)),
        ("á" * 135, SmsCount(UCS2, 135, 3)),
        ("😀" * 35, SmsCount(UCS2, 70, 1)),
        ("😀" * 36, SmsCount(UCS2, 72, 2)),
        # a surrogate pair stays in one segment: 66 + (2 + 65) + 1
        ("a" * 66 + "😀" + "a" * 66, SmsCount(UCS2, 134, 3)),
        ("a" * 65 + "😀" + "a" * 67, SmsCount(UCS2, 134, 2)),
        # one character outside GSM-7 makes the whole body UCS-2 (and € a single unit)
        ("a" * 159 + "😀", SmsCount(UCS2, 161, 3)),
        ("€" * 69 + "ç", SmsCount(UCS2, 70, 1)),
        ("👋🏽", SmsCount(UCS2, 4, 1)),
    ],
)
def test_count_sms(text: str, expected: SmsCount) -> None:
    assert count_sms(text) == expected
    assert sms_segments(text) == expected.segments


@pytest.mark.parametrize("char", list(EXTENSION))
def test_extension_characters_take_two_septets(char: str) -> None:
    assert is_gsm7(char)
    assert count_sms(char) == SmsCount(GSM7, 2, 1)
    assert count_sms(char * 80).segments == 1
    assert count_sms(char * 81).segments == 2


def test_gsm_basic_characters_take_one_septet() -> None:
    assert is_gsm7(BASIC_SPECIALS)
    assert count_sms(BASIC_SPECIALS) == SmsCount(GSM7, len(BASIC_SPECIALS), 1)


@pytest.mark.parametrize("char", ["ç", "á", "`", "\u2019", "\u201c", "\t", "\u00a0", "Ω̃", "ł", "你", "\x1b"])
def test_characters_outside_gsm7(char: str) -> None:
    assert not is_gsm7("abc" + char)
    assert count_sms("abc" + char).encoding == UCS2


def test_utf16_len() -> None:
    assert utf16_len("") == 0
    assert utf16_len("abc€") == 4
    assert utf16_len("😀") == 2
    assert utf16_len("👨\u200d👩\u200d👧") == 8
    assert utf16_len("\ud83d") == 1  # a lone surrogate (broken input) is one unit


ALPHABET = ["a", "Z", "0", " ", "\n", ".", "€", "[", "é", "Ç", "ç", "á", "你", "😀", "👋🏽", "\u200d", "e\u0301", "🇫🇷"]
texts = st.lists(st.sampled_from(ALPHABET), max_size=400).map("".join)


@settings(deadline=None)
@given(texts)
def test_count_agrees_with_the_stand_in(text: str) -> None:
    # Two implementations written apart (the stand-in's is Twilio's rule spelled per character).
    assert count_sms(text).segments == sms_segments_as_twilio_counts(text)


# ============================================================================================== SMS policy


def test_split_sms_nothing() -> None:
    assert split_sms("") == []


@pytest.mark.parametrize("text", ["Hi", "  padded  ", "a" * 1530, "€" * 760, "😀" * 330, "á" * 670])
def test_split_sms_within_ten_segments_goes_whole(text: str) -> None:
    assert split_sms(text) == [text]


def test_split_sms_just_over_ten_segments() -> None:
    assert split_sms("a" * 1531) == ["a" * 1530, "a"]
    assert split_sms("á" * 671) == ["á" * 670, "á"]
    # 153 septets a segment hold 76 €, 67 code units 33 emoji: a two-unit character never straddles two
    assert split_sms("€" * 761) == ["€" * 760, "€"]
    assert split_sms("😀" * 331) == ["😀" * 330, "😀"]


def test_split_sms_on_words() -> None:
    text = " ".join(f"word{i}" for i in range(300))  # 2189 characters
    parts = split_sms(text)
    assert len(parts) == 2
    assert all(sms_segments(p) <= 10 for p in parts)
    assert parts[0].endswith(parts[0].split()[-1]) and not parts[0].endswith(" ")
    assert " ".join(parts) == text  # cut at a space, no word broken


def test_split_sms_prefers_sentences() -> None:
    text = " ".join(f"This is sentence number {i}, which goes on for a while." for i in range(40))
    parts = split_sms(text)
    assert len(parts) == 2
    assert parts[0].endswith(".")
    assert " ".join(parts) == text


def test_split_sms_prefers_paragraphs() -> None:
    paragraphs = [f"Paragraph {i}. " + "Words in it. " * 45 for i in range(3)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    parts = split_sms(text)
    assert parts == [text.rsplit("\n\n", 1)[0], paragraphs[2].strip()]


def test_split_sms_each_part_in_its_own_encoding() -> None:
    text = "plain text " * 130 + "\n\nand an emoji at the end 😀"
    assert count_sms(text).encoding == UCS2 and count_sms(text).segments > 10
    parts = split_sms(text)
    assert parts == ["plain text " * 129 + "plain text", "and an emoji at the end 😀"]
    assert count_sms(parts[0]).encoding == GSM7 and len(parts[0]) > 670


def test_split_sms_one_segment_each() -> None:
    parts = split_sms("Hello world. " * 30, max_segments=1)
    assert all(sms_segments(p) == 1 for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert " ".join(parts) == ("Hello world. " * 30).strip()


def test_split_sms_keeps_two_unit_characters_whole() -> None:
    assert split_sms("€" * 200, max_segments=1) == ["€" * 80, "€" * 80, "€" * 40]
    emoji = split_sms("😀" * 100, max_segments=1)
    assert emoji == ["😀" * 35, "😀" * 35, "😀" * 30]


def test_split_sms_twilio_character_limit() -> None:
    parts = split_sms("a" * 250, max_segments=10, max_chars=100)
    assert parts == ["a" * 100, "a" * 100, "a" * 50]
    # with 11 segments allowed, Twilio's 1600 characters are the binding limit
    assert [len(p) for p in split_sms("a" * 1700, max_segments=11)] == [1600, 100]


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"max_segments": 0}, "max_segments"), ({"max_chars": 1}, "max_chars")]
)
def test_split_sms_limits_must_make_sense(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_sms("Hi", **kwargs)


@settings(deadline=None)
@given(texts, st.integers(min_value=1, max_value=3))
def test_split_sms_properties(text: str, max_segments: int) -> None:
    parts = split_sms(text, max_segments=max_segments)
    assert_split(text, parts, lambda p: sms_segments(p) <= max_segments and utf16_len(p) <= 1600)


# ============================================================================================== WhatsApp


def test_split_whatsapp_limits() -> None:
    assert split_whatsapp_text("") == []
    assert split_whatsapp_text("a" * 4096) == ["a" * 4096]
    assert split_whatsapp_text("a" * 4097) == ["a" * 4096, "a"]
    assert split_whatsapp_text("a" * 10_000) == ["a" * 4096, "a" * 4096, "a" * 1808]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a surrogate pair at the limit is never split
        ("a" * 4095 + "😀", ["a" * 4095, "😀"]),
        ("a" * 4094 + "😀", ["a" * 4094 + "😀"]),
        # an emoji and its skin tone, a ZWJ family, a letter and its combining accent stay together
        ("a" * 4094 + "👋🏽", ["a" * 4094, "👋🏽"]),
        ("a" * 4092 + "👨\u200d👩\u200d👧", ["a" * 4092, "👨\u200d👩\u200d👧"]),
        ("a" * 4095 + "e\u0301", ["a" * 4095, "e\u0301"]),
        ("a" * 4095 + "❤\ufe0f", ["a" * 4095, "❤\ufe0f"]),
        # flags are pairs of regional indicators: cut between pairs, never inside one
        ("a" * 4093 + "🇫🇷🇩🇪", ["a" * 4093, "🇫🇷🇩🇪"]),
        ("a" * 4091 + "🇫🇷🇩🇪", ["a" * 4091 + "🇫🇷", "🇩🇪"]),
    ],
    ids=["pair-over", "pair-fits", "skin-tone", "zwj-family", "combining", "variation-selector", "flag", "flags"],
)
def test_split_whatsapp_keeps_characters_whole(text: str, expected: list[str]) -> None:
    parts = split_whatsapp_text(text)
    assert parts == expected
    assert all(utf16_len(p) <= 4096 for p in parts)


def test_split_whatsapp_a_character_that_cannot_fit_is_cut_all_the_same() -> None:
    family = "👨\u200d👩\u200d👧"  # 8 units
    parts = split_whatsapp_text(family, limit=6)
    assert "".join(parts) == family and all(utf16_len(p) <= 6 for p in parts)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        (
            "First sentence here. Second sentence here. Third one.",
            30,
            ["First sentence here.", "Second sentence here.", "Third one."],
        ),
        # a sentence end that would leave the part less than half full loses to the last space
        ("Hi. " + "word " * 10, 30, ["Hi. word word word word word", "word word word word word"]),
        ("Para one is here. Still para one.\n\nPara two.", 40, ["Para one is here. Still para one.", "Para two."]),
        ("line one is here\nline two\nline three", 20, ["line one is here", "line two\nline three"]),
        ('He said "stop now." Then he left the room.', 30, ['He said "stop now."', "Then he left the room."]),
        ("这是第一句。这是第二句。这是第三句。", 14, ["这是第一句。这是第二句。", "这是第三句。"]),
        ("What? Really! Yes… " * 2, 24, ["What? Really! Yes… What?", "Really! Yes…"]),
        (" " * 50 + "x", 20, ["x"]),
        (" " * 50, 20, []),
        ("no-spaces-at-all-here", 8, ["no-space", "s-at-all", "-here"]),
    ],
    ids=["sentences", "half-full", "paragraph", "line", "quote", "cjk", "ellipsis", "leading-space", "blank", "hard"],
)
def test_split_whatsapp_boundaries(text: str, limit: int, expected: list[str]) -> None:
    assert split_whatsapp_text(text, limit=limit) == expected


def test_split_whatsapp_limit_must_hold_any_character() -> None:
    with pytest.raises(ValueError, match="limit"):
        split_whatsapp_text("Hi", limit=1)


def test_split_text_refuses_a_limit_no_character_meets() -> None:
    with pytest.raises(ValueError, match="too small"):
        split_text("abc", lambda part: len(part) < 1)


@settings(deadline=None)
@given(texts, st.integers(min_value=2, max_value=60))
def test_split_whatsapp_properties(text: str, limit: int) -> None:
    assert_split(text, split_whatsapp_text(text, limit=limit), lambda p: utf16_len(p) <= limit)


def assert_split(text: str, parts: list[str], fits: object) -> None:
    assert callable(fits)
    if not text:
        assert parts == []
        return
    if fits(text):
        assert parts == [text]
        return
    assert all(fits(p) for p in parts)
    assert all(p and p == p.strip() for p in parts)
    # nothing but the whitespace at the cuts is lost, and the order is kept
    assert "".join("".join(parts).split()) == "".join(text.split())
