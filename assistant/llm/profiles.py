"""Model profiles: how a model wants its prompt, and how it thinks.

* ``mimo`` (MiMo-7B RL and SFT): ChatML, an empty system prompt as the model card
  recommends (the instructions open the first user turn), ``<think>…</think>`` reasoning.
  With no thinking the reasoning block is given pre-closed, so the model decodes straight into
  the constrained answer; with a budget it first thinks (unconstrained, at most that many
  tokens), then a second, grammar-constrained step decodes the answer after ``</think>``.
* ``generic``: the GGUF's own chat template (``tokenizer.chat_template``), rendered with
  jinja2 like transformers does; instructions go in the system message (or open the user
  turn when the template refuses system messages). Base models without a template get a
  plain text layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from assistant.llm.prompt import PromptParts

Message = dict[str, str]
Renderer = Callable[[list[Message]], str]
_SENTINEL = "\x00request\x00"


SystemMode = Literal["instructions", "empty", "none"]


def chat_messages(parts: PromptParts, system: SystemMode) -> list[Message]:
    if system == "instructions":
        return [{"role": "system", "content": parts.instructions},
                {"role": "user", "content": parts.request}]
    user = {"role": "user", "content": f"{parts.instructions}\n\n{parts.request}"}
    return [{"role": "system", "content": ""}, user] if system == "empty" else [user]


@dataclass(frozen=True)
class ModelProfile:
    name: Literal["mimo", "generic"]
    # Where the instructions go: the system message, or the start of the user turn after an
    # empty system message ("empty") or none at all ("none": templates that refuse one).
    system: SystemMode
    render: Renderer  # messages -> prompt text ending with the assistant turn's opening
    think_open: str | None = None
    think_close: str | None = None

    def messages(self, parts: PromptParts) -> list[Message]:
        return chat_messages(parts, self.system)

    def prompt(self, parts: PromptParts, reasoning: str | None = None) -> str:
        """The text the answer is decoded after; ``reasoning`` is what the model thought."""
        text = self.render(self.messages(parts))
        if self.think_open and self.think_close:
            # Closing the reasoning block ourselves: the answer follows directly.
            text += f"{self.think_open}\n{(reasoning or '').strip()}\n{self.think_close}\n\n"
        return text

    def thinking_prompt(self, parts: PromptParts) -> str:
        """The text reasoning is decoded after (only for profiles that think)."""
        assert self.think_open is not None
        return f"{self.render(self.messages(parts))}{self.think_open}\n"

    @property
    def can_think(self) -> bool:
        return self.think_open is not None

    def static_prefix(self, instructions: str) -> str:
        """The part of every prompt that comes before the request: cached once per load."""
        rendered = self.render(self.messages(PromptParts(instructions, _SENTINEL)))
        return rendered[:rendered.index(_SENTINEL)]


def render_chatml(messages: list[Message]) -> str:
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return f"{turns}<|im_start|>assistant\n"


def render_plain(messages: list[Message]) -> str:
    """For base models without a chat template: the text, then where the answer goes."""
    body = "\n\n".join(m["content"] for m in messages)
    return f"{body}\n\nAnswer (JSON):\n"


def jinja_renderer(template: str, bos_token: str, eos_token: str) -> Renderer:
    """A GGUF chat template rendered the way transformers renders it."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    def tojson(value: Any, indent: int | None = None, **_: Any) -> str:
        return json.dumps(value, ensure_ascii=False, indent=indent)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception,
                       strftime_now=lambda fmt: datetime.now().strftime(fmt))
    compiled = env.from_string(template)

    def render(messages: list[Message]) -> str:
        return compiled.render(messages=messages, add_generation_prompt=True,
                               bos_token=bos_token, eos_token=eos_token)

    return render


MIMO = ModelProfile("mimo", system="empty", render=render_chatml,
                    think_open="<think>", think_close="</think>")


def generic_profile(chat_template: str | None, bos_token: str = "",
                    eos_token: str = "") -> ModelProfile:
    if not chat_template:
        return ModelProfile("generic", system="none", render=render_plain)
    render = jinja_renderer(chat_template, bos_token, eos_token)
    try:  # some templates refuse a system message: then the instructions open the user turn
        render([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}])
        system: Literal["instructions", "none"] = "instructions"
    except Exception:  # jinja2.TemplateError and whatever the template itself raises
        system = "none"
    return ModelProfile("generic", system=system, render=render)


def resolve_profile(setting: Literal["auto", "mimo", "generic"], model_name: str,
                    chat_template: str | None = None, bos_token: str = "",
                    eos_token: str = "") -> ModelProfile:
    """``auto`` picks MiMo by the model's name, anything else gets the generic profile."""
    if setting == "mimo" or (setting == "auto" and "mimo" in model_name.casefold()):
        return MIMO
    return generic_profile(chat_template, bos_token, eos_token)
