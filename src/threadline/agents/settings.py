"""What an agent version's settings come to on a channel: the one rule every surface shows and every run uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from threadline.models.enums import ChannelType


class ChannelTunable(Protocol):
    temperature: float | None
    max_tokens: int | None
    sms_temperature: float | None
    sms_max_tokens: int | None


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    temperature: float | None
    max_tokens: int | None


def effective_settings(version: ChannelTunable, channel: ChannelType) -> EffectiveSettings:
    """The temperature and max_tokens a run on ``channel`` uses: on SMS the version's SMS settings, each where
    it is set (an SMS reply is billed per segment, so it is often kept shorter than elsewhere)."""
    if channel is ChannelType.SMS:
        return EffectiveSettings(
            temperature=version.sms_temperature if version.sms_temperature is not None else version.temperature,
            max_tokens=version.sms_max_tokens if version.sms_max_tokens is not None else version.max_tokens,
        )
    return EffectiveSettings(temperature=version.temperature, max_tokens=version.max_tokens)
