"""The one table between threadline's words and the four vendors' words.

Every dialect adapter renders through this module and nothing else decides what a vendor calls a role,
a source or a channel. ``None`` means "this surface has no word for it": such messages are not shown
there (a vendor document without a ``hidden`` role never sees hidden notes, Feather's SMS log never
sees the agent's internal notes). See docs/dialects/ for the reasons behind each row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from threadline.models.enums import ChannelType, Role, Source

Vendor = Literal["altur", "camelai", "aitronos", "feather"]
VENDORS: tuple[Vendor, ...] = ("altur", "camelai", "aitronos", "feather")


@dataclass(frozen=True, slots=True)
class Words:
    """One canonical value as each vendor writes it (None: the vendor does not show it)."""

    altur: str | None
    camelai: str | None
    aitronos: str | None
    feather: str | None

    def of(self, vendor: Vendor) -> str | None:
        word: str | None = getattr(self, vendor)
        return word


# role -> Altur sent_by | camelAI role | Aitronos role | Feather direction
ROLES: Mapping[Role, Words] = {
    Role.USER: Words(altur="EU", camelai="user", aitronos="user", feather="INBOUND"),
    Role.ASSISTANT: Words(altur="AI", camelai="assistant", aitronos="assistant", feather="OUTBOUND"),
    Role.SYSTEM: Words(altur="SYS", camelai="system", aitronos="system", feather=None),
    Role.TOOL: Words(altur=None, camelai="tool", aitronos="tool", feather=None),
    Role.HIDDEN: Words(altur=None, camelai="hidden", aitronos=None, feather=None),
}

# source (how the message entered threadline) -> camelAI source; the others do not show it.
SOURCES: Mapping[Source, Words] = {
    Source.UI: Words(altur=None, camelai="UI", aitronos=None, feather=None),
    Source.MCP: Words(altur=None, camelai="MCP", aitronos=None, feather=None),
    # Everything else came in through an API: ours, a vendor's, a channel provider's webhook, or the runtime
    # answering one of those.
    Source.API: Words(altur=None, camelai="API", aitronos=None, feather=None),
    Source.SMS: Words(altur=None, camelai="API", aitronos=None, feather=None),
    Source.WHATSAPP: Words(altur=None, camelai="API", aitronos=None, feather=None),
    Source.AGENT: Words(altur=None, camelai="API", aitronos=None, feather=None),
}

# channel (integration type) -> Altur integration type; Altur has no SMS.
CHANNELS: Mapping[ChannelType, Words] = {
    ChannelType.API: Words(altur="api", camelai=None, aitronos=None, feather=None),
    ChannelType.WHATSAPP: Words(altur="whatsapp", camelai=None, aitronos=None, feather=None),
    ChannelType.SMS: Words(altur=None, camelai=None, aitronos=None, feather=None),
}


def shown_roles(vendor: Vendor) -> frozenset[Role]:
    """The roles whose messages ``vendor``'s surface shows."""
    return frozenset(role for role, words in ROLES.items() if words.of(vendor) is not None)


def role_word(vendor: Vendor, role: Role) -> str:
    word = ROLES[role].of(vendor)
    if word is None:  # callers filter with shown_roles() first
        raise KeyError(f"{vendor} has no word for role {role.value}")
    return word


def source_word(vendor: Vendor, source: Source) -> str:
    word = SOURCES[source].of(vendor)
    if word is None:
        raise KeyError(f"{vendor} has no word for source {source.value}")
    return word


def channel_word(vendor: Vendor, channel: ChannelType) -> str | None:
    return CHANNELS[channel].of(vendor)
