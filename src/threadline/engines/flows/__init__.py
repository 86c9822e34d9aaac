"""FLOW agents: a declarative, scripted conversation (``schema``) and its interpreter (``engine``).

The run loop parses the agent version's flow (``parse_flow``), loads the thread's ``FlowState`` (None for a
new thread), calls ``advance`` with the end user's new messages, then sends ``turn.outputs``, stores
``turn.state.to_json()`` with the thread and applies ``turn.actions`` (``Handoff``, ``End``). A turn with
``turn.error`` changed nothing and should be recorded as a failed run. ``docs/flows.md`` has the format.
"""

from threadline.engines.flows.engine import (
    MAX_STEPS,
    End,
    FlowAction,
    FlowOutput,
    FlowRunError,
    FlowState,
    FlowStatus,
    FlowTurn,
    Handoff,
    HttpCall,
    Inbound,
    advance,
    end_user_context,
)
from threadline.engines.flows.http import HttpCaller, HttpRequest, HttpResult, HttpxCaller
from threadline.engines.flows.schema import Flow, FlowError, FlowProblem, flow_warnings, parse_flow, parse_flow_document

__all__ = [
    "MAX_STEPS",
    "End",
    "Flow",
    "FlowAction",
    "FlowError",
    "FlowOutput",
    "FlowProblem",
    "FlowRunError",
    "FlowState",
    "FlowStatus",
    "FlowTurn",
    "Handoff",
    "HttpCall",
    "HttpCaller",
    "HttpRequest",
    "HttpResult",
    "HttpxCaller",
    "Inbound",
    "advance",
    "end_user_context",
    "flow_warnings",
    "parse_flow",
    "parse_flow_document",
]
