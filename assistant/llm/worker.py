"""The model worker: one process that owns one llama-cpp-python model.

Started by ``engine.py`` as ``python -I worker.py '<settings JSON>'``. It loads the model,
says ``{"event": "ready", ...}`` (or ``{"event": "failed", ...}``) on stdout, then answers one
JSON request per stdin line with one JSON response per stdout line. Requests run one at a
time, in order; ``{"op": "cancel", "target": ID}`` stops the running one between tokens.

Only the standard library and llama_cpp are imported here (``-I`` keeps this folder off
``sys.path``): a segfault or a hang in native code kills this process, never the daemon.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections.abc import Generator
from typing import Any, TextIO, cast


class Cancelled(Exception):
    pass


class Worker:
    def __init__(self, settings: dict[str, Any]) -> None:
        from llama_cpp import Llama  # the slow, crash-prone part: loads the shared library

        self.llm = Llama(
            model_path=settings["model_path"],
            n_ctx=settings["n_ctx"],
            n_threads=settings["n_threads"],
            n_threads_batch=settings["n_threads"],
            n_gpu_layers=settings["n_gpu_layers"],
            seed=0,
            verbose=False,
        )
        self.cancelled: set[int] = set()
        self._grammars: dict[str, Any] = {}  # schema text -> LlamaGrammar, most recent last
        bos = self.llm.token_bos()
        self.bos_text = (self.llm.detokenize([bos], special=True).decode("utf-8", "replace")
                         if bos >= 0 else "")
        self.add_bos = self.llm.metadata.get("tokenizer.ggml.add_bos_token", "true") == "true"

    def info(self) -> dict[str, Any]:
        metadata = self.llm.metadata
        eos = self.llm.token_eos()
        return {
            "name": metadata.get("general.name", ""),
            "architecture": metadata.get("general.architecture", ""),
            "chat_template": metadata.get("tokenizer.chat_template"),
            "bos_token": self.bos_text,
            "eos_token": (self.llm.detokenize([eos], special=True).decode("utf-8", "replace")
                          if eos >= 0 else ""),
            "n_ctx": self.llm.n_ctx(),
        }

    def tokens(self, text: str) -> list[int]:
        # Chat templates write the BOS text themselves; add it only when they did not.
        add_bos = self.add_bos and not (self.bos_text and text.startswith(self.bos_text))
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def grammar(self, schema: str) -> Any:
        from llama_cpp import LlamaGrammar

        grammar = self._grammars.pop(schema, None)
        if grammar is None:
            grammar = LlamaGrammar.from_string(schema_to_gbnf(schema), verbose=False)
        self._grammars[schema] = grammar
        while len(self._grammars) > 8:
            self._grammars.pop(next(iter(self._grammars)))
        return grammar

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "tokenize":
            return {"tokens": len(self.tokens(request["text"]))}
        if op == "complete":
            return self.complete(request)
        raise ValueError(f"unknown op {op!r}")

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        request_id = request["id"]
        started = time.perf_counter()
        tokens = self.tokens(request["prompt"])
        if not request.get("reuse_prefix", True):
            self.llm.reset()  # forget the evaluated tokens: the whole prompt is evaluated again
        # What llama-cpp-python will keep: the longest common prefix with the last evaluation.
        cached = min(self.llm.longest_token_prefix(self.llm._input_ids.tolist(), tokens),
                     len(tokens) - 1)
        schema = request.get("schema")
        stream = cast("Generator[dict[str, Any], None, None]", self.llm.create_completion(
            tokens,
            max_tokens=request["max_tokens"],
            temperature=0.0,
            stop=request.get("stop") or [],
            grammar=self.grammar(schema) if schema else None,
            stream=True,
        ))
        pieces: list[str] = []
        first_token_at = None
        finish_reason = None
        try:
            for chunk in stream:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                if request_id in self.cancelled:
                    raise Cancelled
                choice = chunk["choices"][0]
                pieces.append(choice["text"])
                finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            stream.close()
        finished = time.perf_counter()
        text = "".join(pieces)
        return {
            "text": text,
            "prompt_tokens": len(tokens),
            "cached_tokens": max(cached, 0),
            "completion_tokens": len(self.llm.tokenize(text.encode("utf-8"), add_bos=False,
                                                       special=True)) if text else 0,
            "ttft_ms": ((first_token_at or finished) - started) * 1000,
            "total_ms": (finished - started) * 1000,
            "finish_reason": finish_reason or "stop",
        }


def bounded_number_rule(schema: dict[str, Any]) -> str | None:
    """GBNF for a number with ``minimum`` and ``maximum``: as many digits as the bounds have.

    llama-cpp-python's converter ignores numeric bounds (a brightness of 1e15 could come out);
    this keeps numbers to the right magnitude, and validation afterwards checks the range.
    """
    kind, low, high = schema.get("type"), schema.get("minimum"), schema.get("maximum")
    if kind not in ("integer", "number") or not isinstance(low, int | float) \
            or not isinstance(high, int | float):
        return None
    digits = len(str(int(max(abs(low), abs(high)))))
    integral = "[0-9]" if digits == 1 else f'("0" | [1-9] [0-9]{{0,{digits - 1}}})'
    sign = '"-"? ' if low < 0 else ""
    fraction = ' ("." [0-9]{1,2})?' if kind == "number" else ""
    return f"{sign}{integral}{fraction} space"


def schema_to_gbnf(schema: str) -> str:
    """``LlamaGrammar.from_json_schema``'s conversion, plus magnitude-bounded numbers."""
    from llama_cpp.llama_grammar import RESERVED_NAMES, SchemaConverter

    class BoundedNumbers(SchemaConverter):  # type: ignore[misc]
        def visit(self, node: dict[str, Any], name: str) -> str:
            rule = bounded_number_rule(node)
            if rule is None:
                return super().visit(node, name)
            return self._add_rule(name + "-" if name in RESERVED_NAMES else name or "root",
                                  rule)

    converter = BoundedNumbers(prop_order={}, allow_fetch=False, dotall=False,
                               raw_pattern=False)
    converter.visit(converter.resolve_refs(json.loads(schema), "stdin"), "")
    return converter.format_grammar()


def read_requests(requests: queue.Queue[dict[str, Any]], cancelled: set[int]) -> None:
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("op") == "cancel":
            cancelled.add(message["target"])
        else:
            requests.put(message)
    os._exit(0)  # the daemon is gone (or closed our stdin): never outlive it


def main() -> int:
    settings = json.loads(sys.argv[1])
    # Keep the real stdout for the protocol; native code printing to fd 1 lands on stderr.
    protocol: TextIO = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    started = time.perf_counter()
    try:
        worker = Worker(settings)
    except Exception as exc:  # a bad file or an unsupported model: report it, then exit
        send({"event": "failed", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"event": "ready", "info": {**worker.info(),
                                     "load_ms": (time.perf_counter() - started) * 1000}})

    requests: queue.Queue[dict[str, Any]] = queue.Queue()
    threading.Thread(target=read_requests, args=(requests, worker.cancelled), daemon=True).start()
    while True:
        request = requests.get()
        request_id = request["id"]
        try:
            if request_id in worker.cancelled:
                raise Cancelled
            send({"id": request_id, "ok": True, "result": worker.handle(request)})
        except Cancelled:
            send({"id": request_id, "ok": False, "cancelled": True, "error": "cancelled"})
        except Exception as exc:
            send({"id": request_id, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            worker.cancelled.discard(request_id)


if __name__ == "__main__":
    sys.exit(main())
