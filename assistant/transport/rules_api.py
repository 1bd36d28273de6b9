"""The rules API behind ``mimo-home rules list`` and ``mimo-home rules run NAME``.

Requests on ``<base>/rules/request`` (``{"id", "op": "list" | "run", "name"}``) are answered
on ``<base>/rules/response/<id>``: the loaded rules with what they last did, or the outcome
of running one rule's actions now.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from assistant.messages import MqttMessage
from assistant.transport.api import parse_request, rules_request_topic, rules_response_topic

log = logging.getLogger(__name__)

MAX_RUNS_IN_FLIGHT = 4
RUN_TIMEOUT_S = 30.0  # a rule that waits longer keeps running; the caller hears it started
Subscribe = Callable[[str, Callable[[MqttMessage], None]], Callable[[], None]]


class RuleRunner(Protocol):
    def rules(self) -> list[Any]: ...

    async def run_rule(self, name: str) -> Any: ...


class RulesServer:
    def __init__(self, base_topic: str, engine: RuleRunner,
                 publish: Callable[[MqttMessage], None]) -> None:
        self.base_topic = base_topic
        self.engine = engine
        self.publish = publish
        self._tasks: set[asyncio.Task[None]] = set()

    def on_request(self, message: MqttMessage) -> None:
        body = parse_request(message, "rules")
        if body is None:
            return
        request_id, op, name = body["id"], body.get("op"), body.get("name")
        if op == "list":
            self._reply(request_id, {"rules": [_plain(rule) for rule in self.engine.rules()]})
        elif op == "run" and isinstance(name, str) and name:
            if len(self._tasks) >= MAX_RUNS_IN_FLIGHT:
                self._reply(request_id, {"error": "busy: other rules are being run; try again"})
                return
            task = asyncio.get_running_loop().create_task(self._run(request_id, name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._reply(request_id, {"error": 'op must be "list", or "run" with a name'})

    async def _run(self, request_id: str, name: str) -> None:
        run = asyncio.ensure_future(self.engine.run_rule(name))
        try:
            outcome = await asyncio.wait_for(asyncio.shield(run), RUN_TIMEOUT_S)
        except TimeoutError:
            self._reply(request_id, {"ran": name, "result": "still running"})
            return
        except KeyError:
            self._reply(request_id, {"error": f"no rule called {name!r}"})
            return
        except Exception as exc:  # the requester must always get an answer
            log.exception("running rule %r failed", name)
            self._reply(request_id, {"error": f"the rule failed: {exc}"})
            return
        self._reply(request_id, {"ran": name, "result": _plain(outcome)})

    def _reply(self, request_id: str, body: dict[str, Any]) -> None:
        self.publish(MqttMessage(rules_response_topic(self.base_topic, request_id),
                                 json.dumps({"id": request_id, **body}, default=str).encode(),
                                 qos=1))


def serve_rules(base_topic: str, engine: RuleRunner, subscribe: Subscribe,
                publish: Callable[[MqttMessage], None]) -> Callable[[], None]:
    """Answer rules requests from now on; returns the function that stops answering."""
    return subscribe(rules_request_topic(base_topic), RulesServer(base_topic, engine,
                                                                  publish).on_request)


def _plain(value: Any) -> Any:
    """A dataclass or pydantic row as JSON-able data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
