"""litellm as a client library against contextd: `litellm_driver.py chat <plain|stream>`.

Three turns through litellm.completion(model='openai/...', api_base=contextd),
each sending only the new message.
"""

from __future__ import annotations

from typing import Any, Dict, List

import common
import litellm

litellm.telemetry = False
litellm.suppress_debug_info = True
litellm.drop_params = False


def complete(text: str, stream: bool) -> Any:
    return litellm.completion(
        model=f"openai/{common.MODEL}",
        api_base=common.base_url(),
        api_key=common.api_key(),
        extra_headers=common.conversation_headers(),
        messages=[{"role": "system", "content": common.SYSTEM}, {"role": "user", "content": text}],
        stream=stream,
        num_retries=0,
        timeout=20,
    )


def response_headers(response: Any) -> Dict[str, str]:
    """litellm hands upstream response headers on as `llm_provider-<name>` in _hidden_params."""
    hidden = getattr(response, "_hidden_params", None) or {}
    additional = hidden.get("additional_headers") or {}
    return {name: additional[f"llm_provider-{name}"] for name in common.CONTEXTD_HEADERS if f"llm_provider-{name}" in additional}


def chat(mode: str) -> Dict[str, Any]:
    if mode not in ("plain", "stream"):
        raise SystemExit(f"mode must be plain or stream, not {mode!r}")
    replies: List[str] = []
    headers: List[Dict[str, str]] = []
    for turn in (1, 2, 3):
        response = complete(f"litellm {mode} turn {turn}", mode == "stream")
        if mode == "stream":
            text = ""
            for chunk in response:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
            replies.append(text)
        else:
            replies.append(response.choices[0].message.content)
        headers.append(response_headers(response))
    return {"replies": replies, "headers": headers}


if __name__ == "__main__":
    common.run({"chat": chat})
