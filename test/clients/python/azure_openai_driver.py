"""AzureOpenAI (openai Python SDK) against contextd: `azure_openai_driver.py <endpoint|base_url> <deployment>`.

endpoint: AzureOpenAI(azure_endpoint=contextd) calls
  /openai/deployments/<deployment>/chat/completions?api-version=...
base_url: AzureOpenAI(base_url=contextd/v1) calls
  /v1/deployments/<deployment>/chat/completions?api-version=...,
  then one more turn with the plain OpenAI client (Authorization: Bearer, the same key).
Both authenticate with the `api-key` header and send only the new message each turn.
"""

from __future__ import annotations

from typing import Any, Dict, List

import common
from openai import AzureOpenAI, OpenAI

API_VERSION = "2024-10-21"


def turns(client: Any, model: str, label: str, count: int) -> Dict[str, List[Any]]:
    replies: List[Any] = []
    headers: List[Dict[str, str]] = []
    for turn in range(1, count + 1):
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "system", "content": common.SYSTEM}, {"role": "user", "content": f"{label} turn {turn}"}],
        )
        headers.append(common.contextd_headers(raw.headers))
        replies.append(raw.parse().choices[0].message.content)
    return {"replies": replies, "headers": headers}


def endpoint(deployment: str) -> Dict[str, Any]:
    client = AzureOpenAI(
        azure_endpoint=common.contextd_url(),
        api_key=common.api_key(),
        api_version=API_VERSION,
        default_headers=common.conversation_headers(),
        max_retries=0,
        timeout=20,
    )
    return turns(client, deployment, "azure endpoint", 2)


def base_url(deployment: str) -> Dict[str, Any]:
    azure = AzureOpenAI(
        base_url=common.base_url(),
        api_key=common.api_key(),
        api_version=API_VERSION,
        default_headers=common.conversation_headers(),
        max_retries=0,
        timeout=20,
    )
    seen = turns(azure, deployment, "azure base_url", 2)
    # The same key as a bearer token on /v1/chat/completions: the same tenant, so the same conversation.
    plain = OpenAI(base_url=common.base_url(), api_key=common.api_key(), default_headers=common.conversation_headers(), max_retries=0, timeout=20)
    more = turns(plain, common.MODEL, "bearer", 1)
    return {"replies": seen["replies"] + more["replies"], "headers": seen["headers"] + more["headers"]}


if __name__ == "__main__":
    common.run({"endpoint": endpoint, "base_url": base_url})
