"""Model management: pull from a stub of the Hub's resolve endpoint (loopback), verify, list."""

from __future__ import annotations

import argparse
import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Config
from assistant.llm.models import (
    CATALOG,
    MODELS_DIR_ENV,
    SERVICE_MODELS_DIR,
    CatalogEntry,
    ModelError,
    add_model_arguments,
    command_models_dir,
    list_models,
    pull,
    verify,
)
from tests.conftest import free_port

CONTENT = b"GGUF" + bytes(range(256)) * 64
SHA = hashlib.sha256(CONTENT).hexdigest()
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves ``/{repo}/resolve/{revision}/{file}`` with the headers huggingface_hub needs:
    ``X-Repo-Commit``, an ``ETag`` (the sha256, as the Hub does for LFS files) and the size."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _head(self) -> bytes | None:
                body = hub.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hub.etags[self.path]}"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                return body

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
                self._head()

            def do_GET(self) -> None:  # noqa: N802
                body = self._head()
                if body is not None:
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def add(self, entry: CatalogEntry, body: bytes, etag: str) -> None:
        path = f"/{entry.repo_id}/resolve/{entry.revision}/{entry.filename}"
        self.files[path] = body
        self.etags[path] = etag


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub()
    threading.Thread(target=fake.server.serve_forever, daemon=True).start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


PINNED = CatalogEntry(name="tiny", description="test", repo_id="acme/tiny-GGUF",
                      filename="tiny-Q4_K_M.gguf", sha256=SHA)
UNPINNED = CatalogEntry(name="tiny", description="test", repo_id="acme/tiny-GGUF",
                        filename="tiny-Q4_K_M.gguf")


def test_pull_downloads_checks_sha256_and_records_it(hub: FakeHub, tmp_path: Path) -> None:
    hub.add(PINNED, CONTENT, SHA)
    path = pull(PINNED, tmp_path, endpoint=hub.url)
    assert path == tmp_path / "tiny-Q4_K_M.gguf" and path.read_bytes() == CONTENT
    result = verify(path)
    assert result.checked and result.sha256 == SHA
    [listed] = list_models(tmp_path)
    assert listed.path == path and listed.sha256 == SHA

    with path.open("r+b") as file:  # bit rot after the download
        file.seek(100)
        file.write(b"\xff")
    with pytest.raises(ModelError, match="does not match.*mimo-home model pull"):
        verify(path)


def test_a_corrupted_download_is_rejected_and_deleted(hub: FakeHub, tmp_path: Path) -> None:
    tampered = CONTENT[:-1] + b"\x00"
    hub.add(PINNED, tampered, hashlib.sha256(tampered).hexdigest())
    with pytest.raises(ModelError, match="does not match the expected"):
        pull(PINNED, tmp_path, endpoint=hub.url)
    assert not (tmp_path / PINNED.filename).exists()


def test_without_a_pinned_hash_the_hubs_sha256_etag_is_checked(hub: FakeHub,
                                                                tmp_path: Path) -> None:
    hub.add(UNPINNED, CONTENT, SHA)
    path = pull(UNPINNED, tmp_path, endpoint=hub.url)
    assert verify(path).checked  # the hash from download time was recorded
    hub.add(UNPINNED, CONTENT[:-1] + b"\x01", SHA)  # body does not match the announced hash
    with pytest.raises(ModelError, match="does not match"):
        pull(UNPINNED, tmp_path / "again", endpoint=hub.url)
    hub.add(UNPINNED, CONTENT, "not-a-sha256")
    with pytest.raises(ModelError, match="no sha256"):
        pull(UNPINNED, tmp_path / "third", endpoint=hub.url)


def test_the_catalog_has_the_mimo_model_and_the_bundled_test_model() -> None:
    mimo = CATALOG["mimo-7b-rl-q4_k_m"]
    assert mimo.repo_id == "jedisct1/MiMo-7B-RL-GGUF"
    assert mimo.filename == "MiMo-7B-RL-Q4_K_M.gguf"
    gemma = CATALOG["gemma3-270m"]
    assert gemma.repo_id is None and gemma.sha256 is not None


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_model_commands(hub: FakeHub, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "own.gguf").write_bytes(CONTENT)
    assert run_cli("list", "--dir", str(tmp_path)) == 0
    listing = capsys.readouterr().out
    assert "mimo-7b-rl-q4_k_m" in listing and "not pulled" in listing and "own.gguf" in listing
    assert run_cli("verify", str(tmp_path / "own.gguf")) == 0
    assert "no recorded hash" in capsys.readouterr().out
    (tmp_path / "broken.gguf").write_bytes(b"<html>")
    assert run_cli("verify", str(tmp_path / "broken.gguf")) == 1
    assert "not a GGUF" in capsys.readouterr().err
    assert run_cli("verify", "mimo-7b-rl-q4_k_m", "--dir", str(tmp_path)) == 1
    assert "mimo-home model pull mimo-7b-rl-q4_k_m" in capsys.readouterr().err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_pulled_model_is_readable_by_the_service_user_whatever_the_umask(
        hub: FakeHub, tmp_path: Path) -> None:
    hub.add(PINNED, CONTENT, SHA)
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o700)
    models_dir = existing / "state" / "models"
    previous = os.umask(0o077)  # a hardened root shell
    try:
        path = pull(PINNED, models_dir, endpoint=hub.url)
    finally:
        os.umask(previous)
    assert mode(path) == 0o644 and mode(path.with_name(path.name + ".json")) == 0o644
    assert mode(models_dir) == 0o755 and mode(models_dir.parent) == 0o755
    assert mode(existing) == 0o700  # a directory that was there is left as it was


def test_model_commands_as_root_use_the_services_models_dir(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The service's state directory (StateDirectory=mimo-home, config state_dir).
    assert SERVICE_MODELS_DIR == Config().state_dir / "models"
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert command_models_dir() == SERVICE_MODELS_DIR
    assert run_cli("verify", "mimo-7b-rl-q4_k_m") == 1  # only looks; nothing is written
    assert f"{SERVICE_MODELS_DIR / CATALOG['mimo-7b-rl-q4_k_m'].filename} not found" in \
        capsys.readouterr().err
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "chosen"))
    assert command_models_dir() == tmp_path / "chosen"  # an explicit choice still wins
    monkeypatch.delenv(MODELS_DIR_ENV)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert command_models_dir() == tmp_path / "data" / "mimo-home" / "models"
