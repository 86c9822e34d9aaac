from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import create_thread, post_message
from tests.integrations.helpers import sms_body


async def _ids(api: httpx.AsyncClient, thread_id: str, **params: Any) -> tuple[list[str], dict[str, Any]]:
    r = await api.get(f"/v1/threads/{thread_id}/messages", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    return [m["content"] for m in body["data"]], body


@pytest.fixture
async def ten(api: httpx.AsyncClient) -> tuple[str, list[dict[str, Any]]]:
    thread = await create_thread(api)
    msgs = [await post_message(api, thread["id"], f"m{i}") for i in range(10)]
    return thread["id"], msgs


async def test_message_fields_for_an_end_user_message(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    m = await post_message(api, thread["id"], "Hello", metadata={"a": 1})
    assert m["object"] == "message" and m["thread_id"] == thread["id"]
    assert m["role"] == "user" and m["type"] == "text" and m["content"] == "Hello"
    assert m["direction"] == "INBOUND" and m["sent_by"] == "end_user" and m["source"] == "api"
    assert m["status"] == "RECEIVED" and m["read"] is False and m["read_at"] is None
    assert m["metadata"] == {"a": 1} and m["attachments"] == [] and m["tool_calls"] is None
    for provider_field in ("external_id", "segments", "price", "price_currency", "error_code", "sent_at"):
        assert m[provider_field] is None
    assert m["run"] is None and m["replies"] is None  # this thread's agent has no version to answer with
    got = (await api.get(f"/v1/threads/{thread['id']}/messages/{m['id']}")).json()
    assert got == {k: v for k, v in m.items() if k not in ("run", "replies")}


async def test_operator_message_is_outbound_and_names_the_operator(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    op = (await api.post("/v1/users", json={"email": "op@example.com"})).json()
    first = await post_message(api, thread["id"], "help?")
    m = await post_message(api, thread["id"], "On it", role="assistant", user_id=op["id"], in_response_to=first["id"])
    assert m["direction"] == "OUTBOUND" and m["sent_by"] == "operator" and m["sent_by_user_id"] == op["id"]
    assert m["status"] == "SENT" and m["sent_at"] is not None and m["in_response_to"] == first["id"]
    r = await api.post(f"/v1/threads/{thread['id']}/messages", json={"content": "x", "user_id": op["id"]})
    assert r.status_code == 422
    r = await api.post(
        f"/v1/threads/{thread['id']}/messages", json={"content": "x", "role": "assistant", "user_id": "nope"}
    )
    assert r.status_code == 404 and r.json()["error"]["param"] == "user_id"


async def test_bad_message_input_is_a_4xx_naming_the_field(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    url = f"/v1/threads/{thread['id']}/messages"
    cases = [
        ({"content": "x", "role": "robot"}, 422, "role"),
        ({"content": "x", "type": "gif"}, 422, "type"),
        ({"content": "x", "surprise": 1}, 422, "surprise"),
        ({"content": 5}, 422, "content"),
        ({"content": "x", "in_response_to": "nope"}, 400, "in_response_to"),
    ]
    for body, status, param in cases:
        r = await api.post(url, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.json())
    r = await api.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert (await api.post("/v1/threads/nope/messages", json={"content": "x"})).status_code == 404


async def test_pages_forward_with_after_and_backward_with_before(api: httpx.AsyncClient, ten: Any) -> None:
    thread_id, msgs = ten
    contents, body = await _ids(api, thread_id, limit=4)
    assert contents == ["m0", "m1", "m2", "m3"] and body["has_more"] is True
    assert body["first_id"] == msgs[0]["id"] and body["last_id"] == msgs[3]["id"]
    contents, body = await _ids(api, thread_id, limit=4, after=body["last_id"])
    assert contents == ["m4", "m5", "m6", "m7"] and body["has_more"] is True
    contents, body = await _ids(api, thread_id, limit=4, after=body["last_id"])
    assert contents == ["m8", "m9"] and body["has_more"] is False
    # Newest first, walking back in time with before.
    contents, body = await _ids(api, thread_id, limit=4, order="desc")
    assert contents == ["m9", "m8", "m7", "m6"] and body["has_more"] is True
    contents, body = await _ids(api, thread_id, limit=4, order="desc", before=body["last_id"])
    assert contents == ["m5", "m4", "m3", "m2"] and body["has_more"] is True
    contents, body = await _ids(api, thread_id, limit=4, order="desc", before=body["last_id"])
    assert contents == ["m1", "m0"] and body["has_more"] is False


async def test_after_and_before_are_chronological_under_both_orders(api: httpx.AsyncClient, ten: Any) -> None:
    thread_id, msgs = ten
    x = msgs[5]["id"]
    # after=X: created after X, nearest first chosen; order only sorts the page.
    assert (await _ids(api, thread_id, after=x, limit=3, order="asc"))[0] == ["m6", "m7", "m8"]
    assert (await _ids(api, thread_id, after=x, limit=3, order="desc"))[0] == ["m8", "m7", "m6"]
    # before=X: created before X, nearest chosen.
    assert (await _ids(api, thread_id, before=x, limit=3, order="asc"))[0] == ["m2", "m3", "m4"]
    assert (await _ids(api, thread_id, before=x, limit=3, order="desc"))[0] == ["m4", "m3", "m2"]
    # Both: the window between them.
    contents, body = await _ids(api, thread_id, after=msgs[1]["id"], before=msgs[6]["id"], limit=2)
    assert contents == ["m2", "m3"] and body["has_more"] is True
    contents, body = await _ids(api, thread_id, after=msgs[1]["id"], before=msgs[6]["id"], limit=10, order="desc")
    assert contents == ["m5", "m4", "m3", "m2"] and body["has_more"] is False


async def test_cursor_from_another_thread_or_unknown_is_a_400(api: httpx.AsyncClient, ten: Any) -> None:
    thread_id, _ = ten
    other = await create_thread(api)
    foreign = await post_message(api, other["id"])
    for param in ("after", "before"):
        for value in (foreign["id"], "00000000-0000-7000-8000-000000000000", "garbage"):
            r = await api.get(f"/v1/threads/{thread_id}/messages", params={param: value})
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["param"] == param and "this thread" in err["message"]


async def test_limit_bounds(api: httpx.AsyncClient, ten: Any) -> None:
    thread_id, _ = ten
    for bad in (0, 101, -1, "x"):
        r = await api.get(f"/v1/threads/{thread_id}/messages", params={"limit": bad})
        assert r.status_code == 422 and r.json()["error"]["param"] == "limit"
    assert len((await _ids(api, thread_id))[0]) == 10
    assert len((await _ids(api, thread_id, limit=100))[0]) == 10


async def test_filters_by_role_direction_status_and_type(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    await post_message(api, thread["id"], "u1")
    await post_message(api, thread["id"], "a1", role="assistant")
    await post_message(api, thread["id"], "pic", type="image", media_url="https://example.com/a.png")
    await post_message(api, thread["id"], "s1", role="system")
    assert (await _ids(api, thread["id"], role="assistant"))[0] == ["a1"]
    assert (await _ids(api, thread["id"], direction="INBOUND"))[0] == ["u1", "pic"]
    assert (await _ids(api, thread["id"], status="SENT"))[0] == ["a1", "s1"]
    assert (await _ids(api, thread["id"], type="image"))[0] == ["pic"]
    r = await api.get(f"/v1/threads/{thread['id']}/messages", params={"status": "LOST"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "status"


async def test_output_modes(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    md = "# Hi\n\nSome **bold** and a [link](https://x.test).\n\n- one\n- two"
    tool_calls = [{"id": "c1", "name": "lookup", "arguments": {"q": "x"}, "result": {"ok": True}}]
    m = await post_message(api, thread["id"], md, role="assistant", tool_calls=tool_calls, iterations=[{"index": 0}])
    url = f"/v1/threads/{thread['id']}/messages"
    assert (await api.get(url)).json()["data"][0]["content"] == md
    plain = (await api.get(url, params={"output_mode": "plain"})).json()["data"][0]["content"]
    assert plain == "Hi\n\nSome bold and a link.\n\none\ntwo"
    for mode in ("blocks", "structured"):
        blocks = (await api.get(url, params={"output_mode": mode})).json()["data"][0]["content"]
        assert blocks == [
            {"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"q": "x"}},
            {"type": "tool_result", "tool_call_id": "c1", "content": {"ok": True}, "is_error": False},
            {"type": "text", "text": md},
        ]
    one = (await api.get(f"{url}/{m['id']}", params={"output_mode": "plain"})).json()
    assert one["content"] == plain and one["tool_calls"] == tool_calls and one["iterations"] == [{"index": 0}]
    r = await api.get(url, params={"output_mode": "html"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "output_mode"


async def test_mark_read(api: httpx.AsyncClient, ten: Any) -> None:
    thread_id, msgs = ten
    r = await api.post(f"/v1/threads/{thread_id}/read", json={"up_to": msgs[2]["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["marked"] == 3
    r = await api.post(f"/v1/threads/{thread_id}/read", json={"message_ids": [msgs[2]["id"], msgs[7]["id"]]})
    assert r.json()["marked"] == 1
    page = (await api.get(f"/v1/threads/{thread_id}/messages")).json()["data"]
    assert [m["read"] for m in page] == [True, True, True, False, False, False, False, True, False, False]
    r = await api.patch(f"/v1/threads/{thread_id}/messages/{msgs[0]['id']}", json={"read": False})
    assert r.status_code == 200 and r.json()["read"] is False and r.json()["read_at"] is None
    assert (await api.post(f"/v1/threads/{thread_id}/read", json={})).json()["marked"] == 7
    r = await api.post(f"/v1/threads/{thread_id}/read", json={"message_ids": ["nope"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "message_ids"


async def test_outbound_messages_on_messaging_channels_are_queued_for_delivery(api: httpx.AsyncClient) -> None:
    sms = await api.post("/v1/integrations", json=sms_body(name="sms"))
    assert sms.status_code == 201, sms.text
    on_sms = await create_thread(api, integration_id=sms.json()["id"])
    on_api = await create_thread(api)
    user = (await api.post("/v1/users", json={"email": "agent-op@example.com"})).json()
    for thread, outbound in ((on_sms, "QUEUED"), (on_api, "SENT")):
        inbound = await post_message(api, thread["id"], "hi")
        reply = await post_message(api, thread["id"], "hello", role="assistant", user_id=user["id"])
        note = await post_message(api, thread["id"], "internal", role="system")
        assert (inbound["status"], reply["status"], note["status"]) == ("RECEIVED", outbound, "SENT"), thread
