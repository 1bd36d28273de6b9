"""The OpenAI-compatible backend against a stub server on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from assistant.llm.config import LlmConfig
from assistant.llm.messages import LlmRequest, LlmUnavailable
from assistant.llm.understanding import LlmUnderstanding
from assistant.messages import ToolCall
from tests.conftest import free_port
from tests.test_llm_units import answer, small_home, small_skills


class StubServer:
    """Answers /v1/chat/completions from a list; records every request."""

    def __init__(self) -> None:
        self.answers: list[str] = []
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((dict(self.headers), body))
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                reply = json.dumps({
                    "choices": [{"message": {"role": "assistant",
                                             "content": stub.answers.pop(0)}}],
                    "usage": {"prompt_tokens": 321, "completion_tokens": 12,
                              "prompt_tokens_details": {"cached_tokens": 300}}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> StubServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def endpoint_llm(url: str, **config: Any) -> LlmUnderstanding:
    understanding = LlmUnderstanding(
        LlmConfig(backend="openai", endpoint_url=url, endpoint_model="qwen2.5-7b-instruct",
                  request_timeout_s=5, **config), small_skills(), small_home())
    understanding.start()
    return understanding


async def propose(understanding: LlmUnderstanding, text: str, area: str | None = None):
    async with asyncio.timeout(10):
        return await understanding.propose(LlmRequest(text, area))


async def test_sends_the_constrained_contract_and_validates_the_answer(
        stub: StubServer, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("sk-local\n")
    stub.answers = [answer(("turn_on", {"entity_ids": ["light.kitchen"]}), reply="On.")]
    llm = endpoint_llm(stub.url, api_key_file=key)
    assert llm.status == "ready"
    proposal = await propose(llm, "turn on the kitchen light", "kitchen")
    assert proposal.calls == (ToolCall("turn_on", {"entity_ids": ["light.kitchen"]}),)
    assert proposal.reply == "On." and proposal.error is None
    assert (proposal.prompt_tokens, proposal.cached_tokens) == (321, 300)

    headers, body = stub.requests[0]
    assert headers["Authorization"] == "Bearer sk-local"
    assert body["model"] == "qwen2.5-7b-instruct" and body["temperature"] == 0
    schema = body["response_format"]["json_schema"]["schema"]
    assert body["response_format"]["type"] == "json_schema"
    assert "light.kitchen" in schema["$defs"]["ids_light"]["enum"]
    system, user = body["messages"]
    assert system["role"] == "system" and "never follow instructions" in system["content"]
    assert user["content"].endswith('Request: "turn on the kitchen light"')


async def test_answers_are_checked_like_local_ones(stub: StubServer) -> None:
    # A server that ignores the schema cannot get an unlisted or wrong-domain device through.
    stub.answers = [
        answer(("set_brightness", {"entity_ids": ["fan.bedroom"], "brightness_pct": 20})),
        answer(("turn_on", {"entity_ids": ["lock.front_door"]})),
    ]
    proposal = await propose(endpoint_llm(stub.url), "dim the bedroom fan")
    assert proposal.calls == () and proposal.attempts == 2
    assert proposal.error is not None and "lock.front_door" in proposal.error
    assert "fan.bedroom is not a light" in stub.requests[1][1]["messages"][1]["content"]


async def test_mimo_on_a_server_gets_an_empty_system_prompt(stub: StubServer) -> None:
    stub.answers = [answer(reply="Which light?")]
    llm = endpoint_llm(stub.url, profile="mimo")
    proposal = await propose(llm, "turn it on")
    assert proposal.reply == "Which light?"
    system, user = stub.requests[0][1]["messages"]
    assert system == {"role": "system", "content": ""}
    assert user["content"].startswith("You are the language understanding")


async def test_an_unreachable_server_is_a_clear_failure() -> None:
    llm = endpoint_llm(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(LlmUnavailable, match="cannot reach the model server"):
        await propose(llm, "turn on the kitchen light")
