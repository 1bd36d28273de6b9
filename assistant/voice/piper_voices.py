"""``mimo-home model pull <voice>``: a Piper voice from rhasspy/piper-voices on Hugging Face.

A voice is two files, ``<name>.onnx`` and ``<name>.onnx.json``, in the repository folder
``<family>/<locale>/<speaker>/<quality>/`` (``it_IT-paola-medium`` lives in
``it/it_IT/paola/medium/``). Both are downloaded to temporary files beside their target and
renamed only once the JSON parses as a Piper voice config, the ``.onnx`` last: a voice that
is there is whole. ``--from`` takes the folder from elsewhere (a directory, a file:// or
http(s) URL holding the two files): a mirror, or a test that must not touch the network.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PIPER_VOICES_REPO = "rhasspy/piper-voices"
DOWNLOAD_TIMEOUT_S = 60.0
# Pulled voices are not secret: the service user must read what root pulled.
READABLE_FILE = 0o644
_NAME = re.compile(r"^(?P<locale>(?P<family>[a-z]{2,3})_[A-Z]{2})-(?P<speaker>[A-Za-z0-9_]+)"
                   r"-(?P<quality>x_low|low|medium|high)$")
_ONNX_START = b"\x08"  # an ONNX model is a protobuf whose first field is ir_version


class VoicePullError(RuntimeError):
    """A voice could not be fetched or is not a Piper voice; the text says what failed."""


@dataclass(frozen=True, slots=True)
class PiperVoiceName:
    name: str
    family: str
    locale: str
    speaker: str
    quality: str

    @property
    def folder(self) -> str:
        """The voice's folder in rhasspy/piper-voices."""
        return f"{self.family}/{self.locale}/{self.speaker}/{self.quality}"


def parse_voice_name(name: str) -> PiperVoiceName | None:
    """``it_IT-paola-medium`` -> its parts; None for anything not shaped like a Piper voice."""
    match = _NAME.match(name)
    if match is None:
        return None
    return PiperVoiceName(name, match["family"], match["locale"], match["speaker"],
                          match["quality"])


def pull_voice(name: str, models_dir: Path, source: str | None = None,
               endpoint: str | None = None) -> Path:
    """Fetch voice ``name`` into ``models_dir`` from ``source`` (its folder), else from the
    Hub (``endpoint``, else $HF_ENDPOINT, else huggingface.co); returns the ``.onnx``."""
    voice = parse_voice_name(name)
    if voice is None:
        raise VoicePullError(f"{name!r} is not a Piper voice name (like it_IT-paola-medium: "
                             "locale-speaker-quality)")
    hub = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    folder = source or f"{hub.rstrip('/')}/{PIPER_VOICES_REPO}/resolve/main/{voice.folder}"
    models_dir.mkdir(parents=True, exist_ok=True)
    onnx, config = models_dir / f"{name}.onnx", models_dir / f"{name}.onnx.json"
    staged_config = _fetch(_file_url(folder, config.name), config)
    try:
        _check_config(staged_config, voice)
        staged_onnx = _fetch(_file_url(folder, onnx.name), onnx)
        try:
            _check_onnx(staged_onnx, onnx.name)
            staged_config.replace(config)
            staged_onnx.replace(onnx)
        finally:
            staged_onnx.unlink(missing_ok=True)
    finally:
        staged_config.unlink(missing_ok=True)
    return onnx


def _file_url(folder: str, filename: str) -> str:
    if "://" not in folder:  # a local directory
        return (Path(folder).resolve() / filename).as_uri()
    return f"{folder.rstrip('/')}/{urllib.parse.quote(filename)}"


def _fetch(url: str, target: Path) -> Path:
    """Download ``url`` to a temporary file beside ``target`` (same file system: the rename
    that follows is atomic); returns that file."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    staged = Path(name)
    try:
        with os.fdopen(handle, "wb") as out, \
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            shutil.copyfileobj(response, out, 1024 * 1024)
        staged.chmod(READABLE_FILE)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        staged.unlink(missing_ok=True)
        raise VoicePullError(f"download of {url} failed: {exc}") from None
    return staged


def _check_config(path: Path, voice: PiperVoiceName) -> None:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VoicePullError(f"{voice.name}.onnx.json is not JSON ({exc}); nothing was "
                             "installed") from None
    audio = config.get("audio") if isinstance(config, dict) else None
    if not isinstance(audio, dict) or not isinstance(audio.get("sample_rate"), int):
        raise VoicePullError(f"{voice.name}.onnx.json is not a Piper voice config (no "
                             "audio.sample_rate); nothing was installed")


def _check_onnx(path: Path, filename: str) -> None:
    with path.open("rb") as file:
        start = file.read(1)
    if start != _ONNX_START:
        raise VoicePullError(f"{filename} is not an ONNX model (empty, or an error page); "
                             "nothing was installed")


# -- `mimo-home model pull <voice>` -----------------------------------------------------------

def add_voice_pull_arguments(pull: argparse.ArgumentParser) -> None:
    """``--from`` on ``mimo-home model pull``, for voices."""
    pull.add_argument("--from", dest="source", metavar="URL_OR_DIR",
                      help="for a Piper voice: the folder holding NAME.onnx and "
                           "NAME.onnx.json (a directory, file:// or http(s) URL; default: "
                           f"its folder in {PIPER_VOICES_REPO} on the Hub)")


def pull_voice_command(args: argparse.Namespace, models_dir: Path) -> int:
    voice = parse_voice_name(args.name)
    assert voice is not None  # the caller dispatches only voice names here
    try:
        path = pull_voice(args.name, models_dir, args.source, args.endpoint)
    except VoicePullError as exc:
        print(f"mimo-home model: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: {path}")
    print(f"set voice.tts.voices.{voice.family}: {path}")
    return 0
