"""The request bodies of the OpenAI mount, and OpenAI's input items as the messages threadline stores.

Bodies ignore the fields they do not name (OpenAI's clients send many; docs/dialects/openai.md lists which are
honoured, ignored or refused). Input items map as "What maps to what" there says: ``message`` items by role,
``function_call`` items as the tool calls an assistant message records (with the ``function_call_output`` that
follows for the same ``call_id`` as that call's result), other ``function_call_output`` items as ``tool``
messages.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr

from threadline.dialects.openai.render import CALL_ID_KEY, DEVELOPER, ROLE_KEY
from threadline.errors import InvalidRequest
from threadline.kit.schemas import storage_problem
from threadline.messages.schemas import MAX_CONTENT
from threadline.messages.service import NewMessage
from threadline.models.enums import MessageType, Role, Source

MAX_ITEMS = 20  # OpenAI's own bound on the items of one request
MAX_URL = 2048  # a message's media_url


def _storable(value: Any) -> Any:
    if (problem := storage_problem(value)) is not None:
        raise ValueError(problem)
    return value


# OpenAI's metadata: at most 16 pairs of strings, keys up to 64 characters, values up to 512.
OpenAIMetadata = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[StrictStr, Field(max_length=512)]],
    Field(max_length=16),
    AfterValidator(_storable),
]
RawItems = Annotated[list[Any], Field(max_length=MAX_ITEMS)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateConversation(_Body):
    metadata: OpenAIMetadata | None = None
    items: RawItems | None = None


class UpdateConversation(_Body):
    metadata: OpenAIMetadata | None


class AddItems(_Body):
    items: RawItems


def _input(value: Any) -> Any:
    """A string, or a list of at most ``MAX_ITEMS`` items (each checked when it is stored)."""
    if value is None or (isinstance(value, str) and len(value) <= MAX_CONTENT):
        return value
    if isinstance(value, list) and len(value) <= MAX_ITEMS:
        return value
    raise ValueError(f"must be a string (at most {MAX_CONTENT} characters) or a list of at most {MAX_ITEMS} items")


def _conversation(value: Any) -> Any:
    """A conversation id, or ``{"id": <a conversation id>}``: the id."""
    if isinstance(value, dict) and set(value) == {"id"}:
        value = value["id"]
    if value is None or (isinstance(value, str) and len(value) <= 64):
        return value
    raise ValueError('must be a conversation id, or an object {"id": <a conversation id>}')


class CreateResponse(_Body):
    """``POST /responses``. Of OpenAI's parameters, those threadline acts on; the rest are ignored (the agent's
    version says how it answers) or, when honouring them is impossible and ignoring them would mislead, refused by
    the endpoint (``tools``, ``prompt``, ``store: false``)."""

    model: Annotated[StrictStr, Field(max_length=300)] | None = None
    input: Annotated[str | list[Any] | None, BeforeValidator(_input)] = None
    conversation: Annotated[str | None, BeforeValidator(_conversation)] = None
    previous_response_id: Annotated[StrictStr, Field(max_length=64)] | None = None
    instructions: Any = None  # ignored: the agent's version holds its instructions
    metadata: OpenAIMetadata | None = None
    stream: StrictBool | None = None
    background: StrictBool | None = None
    store: StrictBool | None = None
    tools: list[Any] | None = None
    prompt: Any = None


# ------------------------------------------------------------------------------------------------ input items


def input_messages(raw: str | list[Any], *, param: str) -> list[NewMessage]:
    """OpenAI input (a string: one user message; or items) as the messages to append, in order. None of them starts
    a run: the caller says which one does."""
    if isinstance(raw, str):
        return [NewMessage(role=Role.USER, content=_text(raw, param), source=Source.API, start_run=False)]
    out: list[NewMessage] = []
    open_calls: NewMessage | None = None  # the assistant message the latest function_call items went into
    for k, item in enumerate(raw):
        where = f"{param}[{k}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where}: an item must be an object", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, where))
            open_calls = None
        elif kind == "function_call":
            call = _call(item, where)
            if open_calls is None:
                open_calls = NewMessage(role=Role.ASSISTANT, tool_calls=[], source=Source.API, start_run=False)
                out.append(open_calls)
            assert open_calls.tool_calls is not None
            open_calls.tool_calls.append(call)
        elif kind == "function_call_output":
            call_id, output = _output(item, where)
            waiting = open_calls.tool_calls or [] if open_calls is not None else []
            pending = next((c for c in waiting if c["id"] == call_id and "result" not in c), None)
            if pending is not None:
                pending["result"] = output
            else:
                out.append(
                    NewMessage(
                        role=Role.TOOL,
                        content=output,
                        metadata={CALL_ID_KEY: call_id},
                        source=Source.API,
                        start_run=False,
                    )
                )
        else:
            raise InvalidRequest(
                f"{where}.type: '{str(kind)[:64]}' items are not supported here; threadline stores message, "
                "function_call and function_call_output items",
                param=f"{where}.type",
                code="unsupported_item_type",
            )
    return out


_ROLES = {"user": Role.USER, "assistant": Role.ASSISTANT, "system": Role.SYSTEM, DEVELOPER: Role.SYSTEM}
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "text": "text", "refusal": "refusal"}


def _message(item: dict[str, Any], where: str) -> NewMessage:
    word = item.get("role")
    role = _ROLES.get(word) if isinstance(word, str) else None
    if role is None:
        raise InvalidRequest(f"{where}.role: must be one of user, assistant, system, developer", param=f"{where}.role")
    content = item.get("content")
    texts: list[str] = []
    media: tuple[MessageType, str] | None = None
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for n, part in enumerate(content):
            at = f"{where}.content[{n}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if not isinstance(part, dict) or not isinstance(kind, str):
                raise InvalidRequest(f"{at}: a content part must be an object with a type", param=at)
            if kind in _TEXT_PARTS:
                text = part.get(_TEXT_PARTS[kind])
                if not isinstance(text, str):
                    raise InvalidRequest(
                        f"{at}.{_TEXT_PARTS[kind]}: must be a string", param=f"{at}.{_TEXT_PARTS[kind]}"
                    )
                texts.append(text)
            elif kind in ("input_image", "input_file"):
                if media is not None:
                    raise InvalidRequest(f"{at}: a message holds at most one image or file", param=at)
                field = "image_url" if kind == "input_image" else "file_url"
                media = (MessageType.IMAGE if kind == "input_image" else MessageType.DOCUMENT, _url(part, field, at))
            else:
                raise InvalidRequest(
                    f"{at}.type: '{kind[:64]}' content is not supported here",
                    param=f"{at}.type",
                    code="unsupported_content",
                )
    else:
        raise InvalidRequest(f"{where}.content: must be a string or a list of content parts", param=f"{where}.content")
    text = _text("\n".join(texts), f"{where}.content")
    if not text and media is None:
        raise InvalidRequest(f"{where}.content: a message needs text, an image or a file", param=f"{where}.content")
    return NewMessage(
        role=role,
        content=text,
        type=media[0] if media is not None else MessageType.TEXT,
        media_url=media[1] if media is not None else None,
        metadata={ROLE_KEY: DEVELOPER} if word == DEVELOPER else {},
        source=Source.API,
        start_run=False,
    )


def _url(part: dict[str, Any], field: str, at: str) -> str:
    url = part.get(field)
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")) or len(url) > MAX_URL:
        raise InvalidRequest(
            f"{at}.{field}: threadline keeps media by URL: an http(s) URL of at most {MAX_URL} characters "
            "(file ids and inline data are not stored)",
            param=f"{at}.{field}",
            code="unsupported_content",
        )
    return _text(url, f"{at}.{field}")


def _call(item: dict[str, Any], where: str) -> dict[str, Any]:
    fields = {}
    for name, limit in (("call_id", 64), ("name", 200), ("arguments", MAX_CONTENT)):
        value = item.get(name)
        if not isinstance(value, str) or (not value and name != "arguments") or len(value) > limit:
            raise InvalidRequest(
                f"{where}.{name}: must be a string of at most {limit} characters", param=f"{where}.{name}"
            )
        fields[name] = _text(value, f"{where}.{name}")
    return {"id": fields["call_id"], "name": fields["name"], "arguments": fields["arguments"]}


def _output(item: dict[str, Any], where: str) -> tuple[str, str]:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id or len(call_id) > 64:
        raise InvalidRequest(f"{where}.call_id: must be a string of 1 to 64 characters", param=f"{where}.call_id")
    output = item.get("output")
    if isinstance(output, list):
        texts = []
        for n, part in enumerate(output):
            if not isinstance(part, dict) or part.get("type") != "input_text" or not isinstance(part.get("text"), str):
                at = f"{where}.output[{n}]"
                raise InvalidRequest(
                    f"{at}: only input_text parts are stored in a function call's output",
                    param=at,
                    code="unsupported_content",
                )
            texts.append(part["text"])
        output = "\n".join(texts)
    if not isinstance(output, str):
        raise InvalidRequest(f"{where}.output: must be a string or a list of content parts", param=f"{where}.output")
    return _text(call_id, f"{where}.call_id"), _text(output, f"{where}.output")


def _text(value: str, param: str) -> str:
    if len(value) > MAX_CONTENT:
        raise InvalidRequest(f"{param}: at most {MAX_CONTENT} characters", param=param)
    if (problem := storage_problem(value)) is not None:
        raise InvalidRequest(f"{param}: {problem}", param=param)
    return value
