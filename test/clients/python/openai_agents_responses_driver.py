"""openai-agents (the Agents SDK) on its default model, the Responses API, against contextd: `openai_agents_responses_driver.py runs <scenario>`.

The scenario (JSON):
  runs:    a list of `{"text": ..., "streamed": bool}`: one run each, on one
           conversation, with Runner.run_streamed when `streamed`, else Runner.run
  history: "new-only" (the default): each run's input is its new user message,
           and contextd gives the history; "full": each run's input is the last
           run's `to_input_list()` plus the new message, as the SDK's guide
           continues a conversation without a session
  route:   optional; sent as the `x-route` header (contextd's route match)
  state:   "header" (the default): the conversation header names the
           conversation; "previous_response_id": no header, each run continues
           the last with previous_response_id=result.last_response_id and the
           tool loop chains its steps (auto_previous_response_id), as the SDK
           does against OpenAI's server-side state (contextd emulates it)

Within a run the SDK's tool loop re-sends the run's own items (the user
message, the function_call, the function_call_output) on every step. The
client is the SDK's default (set_default_openai_client), tracing off. Prints
each run's reply, new items and model calls, and every HTTP exchange
(common.Exchanges: the x-contextd-* headers and the kinds of the input items
the SDK sent).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Optional

import common
from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled
from openai import AsyncOpenAI

set_tracing_disabled(True)


@function_tool
def lookup(q: str) -> str:
    """Looks an item up in the catalogue."""
    return common.lookup_result(q)


async def runs_async(scenario: Dict[str, Any]) -> Dict[str, Any]:
    route: Optional[str] = scenario.get("route")
    resends = scenario.get("history", "new-only") == "full"
    chained = scenario.get("state", "header") == "previous_response_id"
    exchanges = common.Exchanges()
    client = AsyncOpenAI(
        base_url=common.base_url(),
        api_key=common.api_key(),
        max_retries=0,
        timeout=20,
        default_headers={**({} if chained else common.conversation_headers()), **({"x-route": route} if route else {})},
        http_client=exchanges.async_http_client(),
    )
    set_default_openai_client(client, use_for_tracing=False)
    # A model name, not a model object: the SDK's default provider makes it its default model, on the Responses API.
    agent = Agent(name="catalogue", instructions=common.SYSTEM, model=common.MODEL, tools=[lookup])
    seen: List[Dict[str, Any]] = []
    result: Any = None
    for run in scenario["runs"]:
        run_input: Any = run["text"]
        if resends and result is not None:
            run_input = result.to_input_list() + [{"role": "user", "content": run["text"]}]
        state: Dict[str, Any] = {}
        if chained:
            state = {"previous_response_id": result.last_response_id if result is not None else None, "auto_previous_response_id": True}
        if run["streamed"]:
            result = Runner.run_streamed(agent, run_input, **state)
            async for _event in result.stream_events():
                pass
        else:
            result = await Runner.run(agent, run_input, **state)
        seen.append(
            {
                "reply": result.final_output,
                "items": [item.type for item in result.new_items],
                "model_calls": len(result.raw_responses),
                "last_response_id": result.last_response_id,
            }
        )
    await client.close()
    return {"runs": seen, "exchanges": exchanges.seen}


def runs(scenario_json: str) -> Dict[str, Any]:
    return asyncio.run(runs_async(json.loads(scenario_json)))


if __name__ == "__main__":
    common.run({"runs": runs})
