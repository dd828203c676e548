"""The official openai Python SDK against contextd: `openai_sdk.py <scenario> <sync|async>`.

Each scenario sends only what a real app would (the new message, or the SDK's own
objects when it continues a tool call) and prints what the client saw.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List

import common
from openai import AsyncOpenAI, OpenAI

TOOLS: List[Dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Looks an item up in the catalogue.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
]


def system() -> Dict[str, str]:
    return {"role": "system", "content": common.SYSTEM}


def user(text: str) -> Dict[str, str]:
    return {"role": "user", "content": text}


def sync_client() -> OpenAI:
    return OpenAI(base_url=common.base_url(), api_key=common.api_key(), max_retries=0, timeout=20, default_headers=common.conversation_headers())


def async_client() -> AsyncOpenAI:
    return AsyncOpenAI(base_url=common.base_url(), api_key=common.api_key(), max_retries=0, timeout=20, default_headers=common.conversation_headers())


# ---- plain chat: three turns, each sending only the new message ----


def plain_sync() -> Dict[str, Any]:
    client = sync_client()
    replies = []
    for turn in (1, 2, 3):
        completion = client.chat.completions.create(model=common.MODEL, messages=[system(), user(f"plain turn {turn}")])
        replies.append(completion.choices[0].message.content)
    return {"replies": replies}


async def plain_async() -> Dict[str, Any]:
    client = async_client()
    replies = []
    for turn in (1, 2, 3):
        completion = await client.chat.completions.create(model=common.MODEL, messages=[system(), user(f"plain turn {turn}")])
        replies.append(completion.choices[0].message.content)
    await client.close()
    return {"replies": replies}


# ---- with_raw_response: the x-contextd-* headers of two turns ----


def raw_sync() -> Dict[str, Any]:
    client = sync_client()
    replies, headers = [], []
    for turn in (1, 2):
        raw = client.chat.completions.with_raw_response.create(model=common.MODEL, messages=[system(), user(f"raw turn {turn}")])
        headers.append(common.contextd_headers(raw.headers))
        replies.append(raw.parse().choices[0].message.content)
    # Not a chat completion: passed through, and contextd says the header bought no memory.
    embedding = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="raw embedding")
    return {"replies": replies, "headers": headers, "embedding_headers": common.contextd_headers(embedding.headers)}


async def raw_async() -> Dict[str, Any]:
    client = async_client()
    replies, headers = [], []
    for turn in (1, 2):
        raw = await client.chat.completions.with_raw_response.create(model=common.MODEL, messages=[system(), user(f"raw turn {turn}")])
        headers.append(common.contextd_headers(raw.headers))
        replies.append(raw.parse().choices[0].message.content)
    embedding = await client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="raw embedding")
    await client.close()
    return {"replies": replies, "headers": headers, "embedding_headers": common.contextd_headers(embedding.headers)}


# ---- a route with a tight budget: six long turns, the window bound by the budget ----

TIGHT = {"x-route": "tight"}


def tight_text(turn: int) -> str:
    return f"tight turn {turn}: " + "lorem ipsum dolor sit amet " * 6


def tight_sync() -> Dict[str, Any]:
    client = sync_client()
    replies, headers = [], []
    for turn in range(1, 7):
        raw = client.chat.completions.with_raw_response.create(model=common.MODEL, messages=[system(), user(tight_text(turn))], extra_headers=TIGHT)
        headers.append(common.contextd_headers(raw.headers))
        replies.append(raw.parse().choices[0].message.content)
    return {"replies": replies, "headers": headers}


async def tight_async() -> Dict[str, Any]:
    client = async_client()
    replies, headers = [], []
    for turn in range(1, 7):
        raw = await client.chat.completions.with_raw_response.create(model=common.MODEL, messages=[system(), user(tight_text(turn))], extra_headers=TIGHT)
        headers.append(common.contextd_headers(raw.headers))
        replies.append(raw.parse().choices[0].message.content)
    await client.close()
    return {"replies": replies, "headers": headers}


# ---- streaming with stream_options.include_usage, two turns ----


def stream_usage_sync() -> Dict[str, Any]:
    client = sync_client()
    replies, usages = [], []
    for turn in (1, 2):
        stream = client.chat.completions.create(
            model=common.MODEL, messages=[system(), user(f"stream turn {turn}")], stream=True, stream_options={"include_usage": True}
        )
        text, usage = "", None
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
        replies.append(text)
        usages.append(usage)
    return {"replies": replies, "usage": usages}


async def stream_usage_async() -> Dict[str, Any]:
    client = async_client()
    replies, usages = [], []
    for turn in (1, 2):
        stream = await client.chat.completions.create(
            model=common.MODEL, messages=[system(), user(f"stream turn {turn}")], stream=True, stream_options={"include_usage": True}
        )
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
        replies.append(text)
        usages.append(usage)
    await client.close()
    return {"replies": replies, "usage": usages}


# ---- a stream whose upstream end lags [DONE]: the SDK stops reading at [DONE] and closes ----


def stream_hold_end_sync() -> Dict[str, Any]:
    client = sync_client()
    stream = client.chat.completions.create(model=common.MODEL, messages=[system(), user("held turn 1")], stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    # The SDK has closed the response at [DONE]; the upstream still holds its end.
    closed = stream.response.is_closed
    follow_up = client.chat.completions.create(model=common.MODEL, messages=[system(), user("held turn 2")])
    return {"replies": [text, follow_up.choices[0].message.content], "closed_after_done": closed}


async def stream_hold_end_async() -> Dict[str, Any]:
    client = async_client()
    stream = await client.chat.completions.create(model=common.MODEL, messages=[system(), user("held turn 1")], stream=True)
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    closed = stream.response.is_closed
    follow_up = await client.chat.completions.create(model=common.MODEL, messages=[system(), user("held turn 2")])
    await client.close()
    return {"replies": [text, follow_up.choices[0].message.content], "closed_after_done": closed}


# ---- tools: the model calls lookup, the client re-sends the SDK's own message and the result ----


def tool_message(call: Any) -> Dict[str, str]:
    args = json.loads(call.function.arguments)
    return {"role": "tool", "tool_call_id": call.id, "content": common.lookup_result(args["q"])}


def tools_sync() -> Dict[str, Any]:
    client = sync_client()
    messages: List[Any] = [system(), user("tools: look up item 5")]
    first = client.chat.completions.create(model=common.MODEL, messages=messages, tools=TOOLS)
    reply = first.choices[0].message
    # The SDK's ChatCompletionMessage object itself, as the openai cookbook does.
    messages.append(reply)
    messages.extend(tool_message(call) for call in reply.tool_calls or [])
    second = client.chat.completions.create(model=common.MODEL, messages=messages, tools=TOOLS)
    messages.append(second.choices[0].message)
    messages.append(user("tools: thanks"))
    third = client.chat.completions.create(model=common.MODEL, messages=messages, tools=TOOLS)
    return {
        "tool_calls": [call.model_dump() for call in reply.tool_calls or []],
        "replies": [second.choices[0].message.content, third.choices[0].message.content],
    }


async def tools_async() -> Dict[str, Any]:
    client = async_client()
    messages: List[Any] = [system(), user("tools: look up item 5")]
    first = await client.chat.completions.create(model=common.MODEL, messages=messages, tools=TOOLS)
    reply = first.choices[0].message
    # model_dump(): every field, unset ones as null (audio, function_call, refusal).
    messages.append(reply.model_dump())
    messages.extend(tool_message(call) for call in reply.tool_calls or [])
    second = await client.chat.completions.create(model=common.MODEL, messages=messages, tools=TOOLS)
    messages.append(second.choices[0].message.model_dump())
    messages.append(user("tools: thanks"))
    third = await client.chat.completions.create(model=common.MODEL, messages=messages, tools=TOOLS)
    await client.close()
    return {
        "tool_calls": [call.model_dump() for call in reply.tool_calls or []],
        "replies": [second.choices[0].message.content, third.choices[0].message.content],
    }


# ---- cancellation: a stream closed mid-way, between two complete turns ----

CANCEL_AFTER_CHUNKS = 2


def cancel_sync() -> Dict[str, Any]:
    client = sync_client()
    before = client.chat.completions.create(model=common.MODEL, messages=[system(), user("cancel turn 1")])
    stream = client.chat.completions.create(model=common.MODEL, messages=[system(), user("cancel turn 2, abandoned")], stream=True)
    chunks = 0
    for _chunk in stream:
        chunks += 1
        if chunks == CANCEL_AFTER_CHUNKS:
            break
    stream.close()
    after = client.chat.completions.create(model=common.MODEL, messages=[system(), user("cancel turn 3")])
    return {"replies": [before.choices[0].message.content, after.choices[0].message.content], "chunks_read": chunks}


async def cancel_async() -> Dict[str, Any]:
    client = async_client()
    before = await client.chat.completions.create(model=common.MODEL, messages=[system(), user("cancel turn 1")])
    stream = await client.chat.completions.create(model=common.MODEL, messages=[system(), user("cancel turn 2, abandoned")], stream=True)
    chunks = 0
    async for _chunk in stream:
        chunks += 1
        if chunks == CANCEL_AFTER_CHUNKS:
            break
    await stream.close()
    after = await client.chat.completions.create(model=common.MODEL, messages=[system(), user("cancel turn 3")])
    await client.close()
    return {"replies": [before.choices[0].message.content, after.choices[0].message.content], "chunks_read": chunks}


SCENARIOS = {
    "plain": (plain_sync, plain_async),
    "raw": (raw_sync, raw_async),
    "tight": (tight_sync, tight_async),
    "stream_usage": (stream_usage_sync, stream_usage_async),
    "stream_hold_end": (stream_hold_end_sync, stream_hold_end_async),
    "tools": (tools_sync, tools_async),
    "cancel": (cancel_sync, cancel_async),
}


def scenario(name: str):
    sync_fn, async_fn = SCENARIOS[name]

    def run(mode: str) -> Dict[str, Any]:
        if mode == "sync":
            return sync_fn()
        if mode == "async":
            return asyncio.run(async_fn())
        raise SystemExit(f"mode must be sync or async, not {mode!r}")

    return run


if __name__ == "__main__":
    common.run({name: scenario(name) for name in SCENARIOS})
