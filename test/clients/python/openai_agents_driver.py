"""openai-agents (the Agents SDK) on Chat Completions against contextd: `openai_agents_driver.py runs`.

Two runs of an agent with a function tool: the first with Runner.run, the
second with Runner.run_streamed continuing from the first run's items. On each
step the SDK re-sends the run's items (instructions, input, tool calls, tool
outputs) as chat messages.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import common
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

set_tracing_disabled(True)


@function_tool
def lookup(q: str) -> str:
    """Looks an item up in the catalogue."""
    return common.lookup_result(q)


async def runs_async() -> Dict[str, Any]:
    client = AsyncOpenAI(base_url=common.base_url(), api_key=common.api_key(), max_retries=0, timeout=20, default_headers=common.conversation_headers())
    agent = Agent(
        name="catalogue",
        instructions=common.SYSTEM,
        model=OpenAIChatCompletionsModel(model=common.MODEL, openai_client=client),
        tools=[lookup],
    )
    first = await Runner.run(agent, "agents: look up item 5")
    second = Runner.run_streamed(agent, first.to_input_list() + [{"role": "user", "content": "agents: and look up item 6"}])
    async for _event in second.stream_events():
        pass
    await client.close()
    return {"replies": [first.final_output, second.final_output], "items": [len(first.new_items), len(second.new_items)]}


def runs() -> Dict[str, Any]:
    return asyncio.run(runs_async())


if __name__ == "__main__":
    common.run({"runs": runs})
