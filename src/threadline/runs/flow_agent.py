"""A FLOW agent's answer: one turn of its flow (engines.flows.engine) over the messages the run answers."""

from __future__ import annotations

from threadline.engines.flows.engine import FlowState, Inbound, advance, end_user_context
from threadline.engines.flows.engine import Handoff as FlowHandoff
from threadline.engines.flows.http import HttpxCaller
from threadline.engines.flows.schema import FlowError, parse_flow
from threadline.engines.tools import Handoff
from threadline.runs.state import Answer, Reply, RunFailed, RunInput


async def answer_with_flow(inp: RunInput, *, allow_private: bool) -> Answer:
    """``allow_private``: the flow's HTTP steps may call private addresses (THREADLINE_TOOLS_ALLOW_PRIVATE_URLS)."""
    if inp.version.flow is None:
        raise RunFailed("no_flow", "the FLOW agent version has no flow", retryable=False)
    try:
        flow = parse_flow(inp.version.flow)
    except FlowError as exc:
        raise RunFailed("invalid_flow", str(exc)[:500], retryable=False) from None
    state = FlowState.from_json(inp.flow_state) if inp.flow_state else None
    inbound = [Inbound.from_message(type=m.type, content=m.content, blocks=m.blocks) for m in inp.inbound]
    context = end_user_context(
        display_name=inp.end_user.display_name,
        address=inp.end_user.address,
        channel=inp.end_user.channel,
        info=inp.end_user.info,
    )
    turn = await advance(flow, state, inbound, context=context, http=HttpxCaller(allow_private=allow_private))
    if turn.error is not None:
        raise RunFailed(f"flow_{turn.error.code}", turn.error.message, retryable=False)
    answer = Answer(
        replies=[Reply(content=o.content, type=o.type, blocks=o.blocks, media_url=o.media_url) for o in turn.outputs],
        flow_state=turn.state.to_json() if turn.state is not None else None,
        keep_flow_state=False,
    )
    for action in turn.actions:
        if isinstance(action, FlowHandoff):
            answer.actions.append(
                Handoff(
                    reason=action.reason or "the flow handed the conversation to a human",
                    assign_to=(action.assign_to,) if action.assign_to else (),
                    tags=action.tags,
                )
            )
    return answer
