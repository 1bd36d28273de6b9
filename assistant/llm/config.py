"""The ``llm`` section of the configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LlmConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # llama_cpp: a GGUF in a supervised worker process; openai: an OpenAI-compatible server.
    backend: Literal["llama_cpp", "openai"] = "llama_cpp"
    model_path: Path | None = None
    # auto: MiMo when the GGUF says so, else the GGUF's own chat template.
    profile: Literal["auto", "mimo", "generic"] = "auto"
    n_ctx: int = Field(4096, ge=512, le=131_072)
    n_threads: int | None = Field(None, ge=1, description="None: half the CPU cores, at least 1")
    n_gpu_layers: int = Field(0, ge=-1, description="-1 offloads every layer")
    # Tokens the model may think before a compound request (0: never think).
    think_budget: int = Field(0, ge=0, le=8192)
    max_output_tokens: int = Field(256, ge=16, le=4096)
    max_calls: int = Field(3, ge=1, le=16, description="tool calls in one answer, at most")
    request_timeout_s: float = Field(60.0, gt=0)
    load_timeout_s: float = Field(300.0, gt=0)
    max_candidates: int = Field(24, ge=1, le=200)
    # Earlier turns shown to the model so "and the bedroom too" resolves.
    history_window_s: float = Field(120.0, ge=0)
    history_turns: int = Field(3, ge=0, le=10)
    endpoint_url: str | None = None  # e.g. http://gpu-box.lan:8080/v1
    endpoint_model: str | None = None
    api_key_file: Path | None = None

    @model_validator(mode="after")
    def _endpoint_for_openai(self) -> LlmConfig:
        if self.backend == "openai" and not self.endpoint_url:
            raise ValueError("backend openai needs endpoint_url")
        return self
