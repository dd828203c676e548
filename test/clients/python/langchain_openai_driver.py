"""langchain-openai's ChatOpenAI against contextd: `langchain_openai_driver.py tools <invoke|stream>`.

A tool round trip in which LangChain re-sends its own message objects
(HumanMessage, the AIMessage with tool_calls it returned, a ToolMessage); it
re-serialises tool-call arguments itself (json.dumps: `{"q": "item 5"}`).
"""

from __future__ import annotations

from typing import Any, Dict, List

import common
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import _convert_message_to_dict


@tool
def lookup(q: str) -> str:
    """Looks an item up in the catalogue."""
    return common.lookup_result(q)


def model() -> Any:
    chat = ChatOpenAI(
        base_url=common.base_url(),
        api_key=common.api_key(),
        model=common.MODEL,
        default_headers=common.conversation_headers(),
        max_retries=0,
        timeout=20,
    )
    return chat.bind_tools([lookup])


def ask(llm: Any, messages: List[BaseMessage], mode: str) -> BaseMessage:
    if mode == "invoke":
        return llm.invoke(messages)
    if mode == "stream":
        merged = None
        for chunk in llm.stream(messages):
            merged = chunk if merged is None else merged + chunk
        if merged is None:
            raise RuntimeError("the stream yielded nothing")
        return merged
    raise SystemExit(f"mode must be invoke or stream, not {mode!r}")


def tools(mode: str) -> Dict[str, Any]:
    llm = model()
    messages: List[BaseMessage] = [SystemMessage(common.SYSTEM), HumanMessage("langchain: look up item 5")]
    first = ask(llm, messages, mode)
    calls = list(getattr(first, "tool_calls", []) or [])
    if not calls:
        raise RuntimeError(f"expected tool calls, got {first!r}")
    messages.append(first)
    for call in calls:
        messages.append(ToolMessage(content=lookup.invoke(call["args"]), tool_call_id=call["id"]))
    second = ask(llm, messages, mode)
    messages.extend([second, HumanMessage("langchain: thanks")])
    third = ask(llm, messages, mode)
    # How LangChain serialises its AIMessage when it re-sends it (its own json.dumps of the parsed args).
    resent = _convert_message_to_dict(first)
    return {
        "tool_calls": [{"id": call["id"], "name": call["name"], "args": call["args"]} for call in calls],
        "resent_arguments": [call["function"]["arguments"] for call in resent.get("tool_calls", [])],
        "replies": [second.content, third.content],
    }


if __name__ == "__main__":
    common.run({"tools": tools})
