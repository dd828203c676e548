"""What every driver shares: its inputs, no phoning home, and one JSON object out.

A driver is run by the vitest suite (test/clients/python-*.e2e.test.ts) with the
virtualenv's python. Inputs come from the environment:

  CONTEXTD_URL       http://127.0.0.1:PORT, contextd's origin
  CONTEXTD_BASE_URL  CONTEXTD_URL + '/v1', an OpenAI client's base URL
  CONVERSATION_ID    the x-conversation-id to send
  API_KEY            the key the client authenticates with

and the scenario (plus, for some drivers, a mode) from argv. It prints one JSON
object on stdout with what the client saw (plus `blocked_connections`: what
it tried to reach beyond 127.0.0.1, refused); any exception prints its
traceback to stderr and exits non-zero.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, Callable, Dict, List, Tuple

# Nothing may reach the internet: the suite runs with no network but 127.0.0.1.
# These are set before any client is imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")
os.environ.setdefault("LITELLM_LOG", "ERROR")
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
os.environ.setdefault("LANGCHAIN_TRACING_V2", "false")
os.environ.setdefault("LANGSMITH_TRACING", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Neither a stray OPENAI_* nor a proxy setting of the developer's shell may redirect a client.
for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION"):
    os.environ.pop(name, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

# ...and what slips past those settings is refused here: any name lookup or
# connection beyond the loopback fails, and is reported in the driver's output
# (`blocked_connections`), which the suite expects to be empty.
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "", None}
blocked_connections: List[str] = []


def _refuse_the_internet(event: str, args: Tuple[Any, ...]) -> None:
    if event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else args[0]
        if host not in _LOOPBACK:
            _refuse(f"getaddrinfo {host}:{args[1]}")
    elif event == "socket.connect":
        address = args[1]
        # AF_UNIX addresses are paths (str or bytes): local by definition.
        if isinstance(address, tuple) and address[0] not in _LOOPBACK:
            _refuse(f"connect {address[0]}:{address[1]}")


def _refuse(what: str) -> None:
    blocked_connections.append(what)
    sys.stderr.write(f"driver: refused {what} (the suite allows 127.0.0.1 only)\n")
    raise ConnectionRefusedError(f"refused {what}: the client-compatibility suite allows 127.0.0.1 only")


sys.addaudithook(_refuse_the_internet)

SYSTEM = "You are a terse assistant. Answer in one line."
MODEL = "gpt-4o-mini"
CONVERSATION_HEADER = "x-conversation-id"
CONTEXTD_HEADERS = ("x-contextd-context-tokens", "x-contextd-history-messages", "x-contextd-summary", "x-contextd-cache", "x-contextd-memory", "x-contextd-conversation-id")


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


def contextd_url() -> str:
    return env("CONTEXTD_URL")


def base_url() -> str:
    return env("CONTEXTD_BASE_URL")


def conversation_id() -> str:
    return env("CONVERSATION_ID")


def api_key() -> str:
    return env("API_KEY")


def conversation_headers() -> Dict[str, str]:
    return {CONVERSATION_HEADER: conversation_id()}


def contextd_headers(headers: Any) -> Dict[str, str]:
    """The x-contextd-* response headers, from any mapping-like headers object."""
    found: Dict[str, str] = {}
    for name in CONTEXTD_HEADERS:
        value = headers.get(name)
        if value is not None:
            found[name] = value
    return found


def lookup_result(q: str) -> str:
    """The tool every driver offers; its answer is what the suite looks for in the stored tool message."""
    return f"{q} is a teapot"


def run(scenarios: Dict[str, Callable[..., Any]]) -> None:
    """Runs argv[1]'s scenario with the remaining argv, prints its result as JSON; exit 1 on any exception."""
    try:
        if len(sys.argv) < 2 or sys.argv[1] not in scenarios:
            raise SystemExit(f"usage: {sys.argv[0]} <{'|'.join(scenarios)}> [args...]")
        result = scenarios[sys.argv[1]](*sys.argv[2:])
        if isinstance(result, dict):
            result["blocked_connections"] = blocked_connections
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        sys.stdout.flush()
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - any failure is the test's to report
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        # os._exit: a client's background threads (litellm's loggers) must not keep a failed driver alive.
        os._exit(1)


class Exchanges:
    """Every response a client received, in order, read by an httpx event hook: its path,
    its x-contextd-* headers (`headers`) and, for a Responses request, the kinds of the input items
    the client sent (`sent_input`: a message's role, else the item's type).

    For clients that give no access to the raw response (the Agents SDK, streams):
    pass `sync_http_client()` or `async_http_client()` as the OpenAI client's http_client.
    """

    def __init__(self) -> None:
        self.seen: List[Dict[str, Any]] = []

    def _record(self, response: Any) -> None:
        seen: Dict[str, Any] = {"path": response.request.url.path, "headers": contextd_headers(response.headers)}
        if seen["path"].endswith("/responses"):
            body = json.loads(response.request.content or b"{}")
            items = body.get("input")
            items = [{"role": "user"}] if isinstance(items, str) else items or []
            seen["sent_input"] = [item.get("role") or item.get("type") for item in items]
        self.seen.append(seen)

    async def _record_async(self, response: Any) -> None:
        self._record(response)

    def sync_http_client(self) -> Any:
        from openai import DefaultHttpxClient

        return DefaultHttpxClient(event_hooks={"response": [self._record]})

    def async_http_client(self) -> Any:
        from openai import DefaultAsyncHttpxClient

        return DefaultAsyncHttpxClient(event_hooks={"response": [self._record_async]})
