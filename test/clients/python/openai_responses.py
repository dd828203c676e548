"""The official openai Python SDK on the Responses API against contextd: `openai_responses.py converse <sync|async> <scenario>`.

The scenario (JSON):
  turns:   the user text of each turn
  calls:   how the requests are made, taken in turn, one per request:
           "create" (client.responses.create, JSON), "stream" (client.responses.stream,
           the SDK's stream helper) or "create_stream" (client.responses.create(stream=True))
  headers: optional extra request headers (`{"x-route": "tight"}`)
  history: "new-only" (the default) or "full"

With "new-only" each request sends only its new input: a turn's text, or, when
the model called the lookup tool, the function_call_output items answering its
calls (the calls themselves are contextd's to send back). With "full" the app
keeps the conversation itself, as OpenAI's function-calling guide does: it
appends the user message, each `response.output` (the SDK's own objects) and
the outputs to one list and sends all of it every time. Prints what the client saw: each
request's style, output items, text and (streams) the text of its deltas, every
HTTP exchange (common.Exchanges: the x-contextd-* headers), and each turn's final text.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Optional, Tuple

import common
from openai import AsyncOpenAI, OpenAI

TOOLS: List[Dict[str, Any]] = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Looks an item up in the catalogue.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"], "additionalProperties": False},
        "strict": True,
    }
]
STYLES = ("create", "stream", "create_stream")
# A turn whose model keeps calling tools ends here: the fake answers an output with text, so more is a bug.
MAX_STEPS_PER_TURN = 3


def request_kwargs(scenario: Dict[str, Any], new_input: Any) -> Dict[str, Any]:
    return {
        "model": common.MODEL,
        "instructions": common.SYSTEM,
        "input": new_input,
        "tools": TOOLS,
        "extra_headers": scenario.get("headers") or None,
    }


def outputs_for(response: Any) -> List[Dict[str, str]]:
    """The function_call_output items answering the response's calls: the new input of the tool loop's next step."""
    return [
        {"type": "function_call_output", "call_id": item.call_id, "output": common.lookup_result(json.loads(item.arguments)["q"])}
        for item in response.output
        if item.type == "function_call"
    ]


def step_seen(style: str, response: Any, streamed: Optional[str]) -> Dict[str, Any]:
    return {
        "style": style,
        "status": response.status,
        "output": [item.type for item in response.output],
        "text": response.output_text,
        "streamed": streamed,
    }


class Conversation:
    """The app's side of the conversation: what it saw, and (history "full") the list it re-sends."""

    def __init__(self, scenario: Dict[str, Any]) -> None:
        self.resends = scenario.get("history", "new-only") == "full"
        self.items: List[Any] = []
        self.steps: List[Dict[str, Any]] = []
        self.replies: List[str] = []

    def input_with(self, new_input: Any) -> Any:
        """What to send: the new input alone, or appended to everything so far."""
        if not self.resends:
            return new_input
        self.items.extend([{"role": "user", "content": new_input}] if isinstance(new_input, str) else new_input)
        return list(self.items)

    def answered(self, style: str, response: Any, streamed: Optional[str]) -> List[Dict[str, str]]:
        """Notes the response; returns the outputs its calls need (the next step's new input), if any."""
        self.steps.append(step_seen(style, response, streamed))
        if self.resends:
            self.items.extend(response.output)
        return outputs_for(response)


def style_of(scenario: Dict[str, Any], request_no: int) -> str:
    style = scenario["calls"][request_no % len(scenario["calls"])]
    if style not in STYLES:
        raise SystemExit(f"unknown call style {style!r}")
    return style


# ---- sync ----


def respond_sync(client: OpenAI, style: str, kwargs: Dict[str, Any]) -> Tuple[Any, Optional[str]]:
    if style == "create":
        return client.responses.create(**kwargs), None
    streamed = ""
    if style == "stream":
        with client.responses.stream(**kwargs) as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    streamed += event.delta
            return stream.get_final_response(), streamed
    final = None
    for event in client.responses.create(stream=True, **kwargs):
        if event.type == "response.output_text.delta":
            streamed += event.delta
        elif event.type == "response.completed":
            final = event.response
    if final is None:
        raise AssertionError("the stream ended without response.completed")
    return final, streamed


def converse_sync(scenario: Dict[str, Any]) -> Dict[str, Any]:
    exchanges = common.Exchanges()
    client = OpenAI(
        base_url=common.base_url(),
        api_key=common.api_key(),
        max_retries=0,
        timeout=20,
        default_headers=common.conversation_headers(),
        http_client=exchanges.sync_http_client(),
    )
    conversation = Conversation(scenario)
    for text in scenario["turns"]:
        new_input: Any = text
        for _ in range(MAX_STEPS_PER_TURN):
            style = style_of(scenario, len(conversation.steps))
            response, streamed = respond_sync(client, style, request_kwargs(scenario, conversation.input_with(new_input)))
            new_input = conversation.answered(style, response, streamed)
            if not new_input:
                break
        conversation.replies.append(conversation.steps[-1]["text"])
    client.close()
    return {"replies": conversation.replies, "steps": conversation.steps, "exchanges": exchanges.seen}


# ---- async ----


async def respond_async(client: AsyncOpenAI, style: str, kwargs: Dict[str, Any]) -> Tuple[Any, Optional[str]]:
    if style == "create":
        return await client.responses.create(**kwargs), None
    streamed = ""
    if style == "stream":
        async with client.responses.stream(**kwargs) as stream:
            async for event in stream:
                if event.type == "response.output_text.delta":
                    streamed += event.delta
            return await stream.get_final_response(), streamed
    final = None
    async for event in await client.responses.create(stream=True, **kwargs):
        if event.type == "response.output_text.delta":
            streamed += event.delta
        elif event.type == "response.completed":
            final = event.response
    if final is None:
        raise AssertionError("the stream ended without response.completed")
    return final, streamed


async def converse_async(scenario: Dict[str, Any]) -> Dict[str, Any]:
    exchanges = common.Exchanges()
    client = AsyncOpenAI(
        base_url=common.base_url(),
        api_key=common.api_key(),
        max_retries=0,
        timeout=20,
        default_headers=common.conversation_headers(),
        http_client=exchanges.async_http_client(),
    )
    conversation = Conversation(scenario)
    for text in scenario["turns"]:
        new_input: Any = text
        for _ in range(MAX_STEPS_PER_TURN):
            style = style_of(scenario, len(conversation.steps))
            response, streamed = await respond_async(client, style, request_kwargs(scenario, conversation.input_with(new_input)))
            new_input = conversation.answered(style, response, streamed)
            if not new_input:
                break
        conversation.replies.append(conversation.steps[-1]["text"])
    await client.close()
    return {"replies": conversation.replies, "steps": conversation.steps, "exchanges": exchanges.seen}


def converse(mode: str, scenario_json: str) -> Dict[str, Any]:
    scenario = json.loads(scenario_json)
    if mode == "sync":
        return converse_sync(scenario)
    if mode == "async":
        return asyncio.run(converse_async(scenario))
    raise SystemExit(f"mode must be sync or async, not {mode!r}")


if __name__ == "__main__":
    common.run({"converse": converse})
