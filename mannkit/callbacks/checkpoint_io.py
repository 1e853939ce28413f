"""Checkpoint files that are never half-written, and readable files or one sentence saying what is wrong.

Writing (:func:`atomic_save`, used by :class:`AtomicCheckpointIO`): the checkpoint goes to a temporary
file *in the destination folder* (``.<name>.<pid>.partial``, a hidden name that no ``last`` or
``*.ckpt`` search matches), is flushed and fsynced, then renamed over
the target with :func:`os.replace`, which is atomic on one filesystem. A kill at any moment leaves
either the old file or the new one, never a truncated one. (Lightning's own save writes a temporary
file under ``$TMPDIR`` and moves it; across filesystems the move truncates the target first.)
Temporaries of dead processes are removed by :func:`clean_stale_temporaries` when a run starts.

Reading (:func:`read_checkpoint`): an empty, truncated, random or text file given as a checkpoint ends
in a :class:`CheckpointError` of one sentence naming the file and what is wrong with it.

Non-finite weights are never written: :class:`AtomicCheckpointIO` refuses a checkpoint whose
``state_dict`` holds NaN or inf (:func:`non_finite_tensors`).
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mannkit.core.errors import MannkitError

__all__ = [
    "AtomicCheckpointIO",
    "CheckedLoading",
    "CheckpointError",
    "check_checkpoint_file",
    "atomic_save",
    "clean_stale_temporaries",
    "is_temporary",
    "non_finite_tensors",
    "read_checkpoint",
]

_TEMPORARY = re.compile(r"^\..+\.(\d+)\.partial$")  # .last.ckpt.<pid>.partial
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # torch's pre-zip format
_FIX = "give a checkpoint written by a finished save, such as the run's checkpoints/last.ckpt"


class CheckpointError(MannkitError, ValueError):
    """A checkpoint file cannot be read or must not be written; the message names the file."""


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_save` (never a checkpoint to resume from).

    >>> is_temporary("runs/x/checkpoints/.last.ckpt.4242.partial"), is_temporary("last.ckpt")
    (True, False)
    """
    return bool(_TEMPORARY.match(Path(path).name))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries that killed saves left in ``folder`` (those of live processes stay); return them."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not _pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(checkpoint: Mapping[str, Any], path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically: temporary file beside it, flush, fsync, ``os.replace``.

    A symbolic link at ``path`` is replaced by the file (not written through). On any error the
    temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{os.getpid()}.partial"
    try:
        with open(temporary, "wb") as file:
            torch.save(dict(checkpoint), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def non_finite_tensors(state_dict: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``state_dict`` that hold NaN or inf.

    >>> non_finite_tensors({"w": torch.tensor([1.0, float("inf")]), "n": torch.tensor([3])})
    ['w']
    """
    return [
        name for name, value in state_dict.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def _what_is_wrong(path: Path) -> str | None:
    """Why ``path`` cannot be a torch checkpoint, judged from its bytes (None if it may be one)."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes), as a save interrupted before writing leaves it"
    with path.open("rb") as file:
        head = file.read(512)
    if head.startswith(_LEGACY_MAGIC):
        return None
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return f"the file is truncated or damaged ({size} bytes of a zip archive without its end), as an interrupted copy leaves it"
        if not any(name.endswith("data.pkl") for name in names):
            return "the file is a zip archive but not a PyTorch checkpoint (it holds no data.pkl)"
        return None
    try:
        head.decode("utf-8")
        text = b"\0" not in head
    except UnicodeDecodeError:
        text = False
    if text:
        return f"the file is text (it starts with {head[:24].decode('utf-8', 'replace')!r}), not a PyTorch checkpoint"
    return f"the file is not a PyTorch checkpoint (it starts with the bytes {head[:8].hex()}, not a zip archive)"


def read_checkpoint(
    path: str | Path, map_location: Any = "cpu", field: str = "--ckpt_path", weights_only: bool = True
) -> dict[str, Any]:
    """Load a Lightning checkpoint with ``weights_only=True``; a file that is not one is a :class:`CheckpointError`.

    Args:
        path: the ``.ckpt`` file.
        map_location: as for :func:`torch.load`.
        field: how the message names where the path came from (``--ckpt_path``, ``load_from_checkpoint``).
        weights_only: as for :func:`torch.load` (only plain data, no arbitrary objects, by default).
    """
    path = check_checkpoint_file(path, field)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=weights_only)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise _unreadable(path, field, exc) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        reason = "the file holds PyTorch data but no 'state_dict', so it is not a Lightning checkpoint"
        raise CheckpointError(f"{field} '{path}': {reason}; {_FIX}.")
    return checkpoint


def check_checkpoint_file(path: str | Path, field: str = "--ckpt_path") -> Path:
    """Raise :class:`CheckpointError` unless ``path`` exists and its bytes may be a torch checkpoint (cheap: no load)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{field} '{path}': the file does not exist; {_FIX}.")
    if is_temporary(path):
        raise CheckpointError(f"{field} '{path}': the file is the temporary file of a save that did not finish; {_FIX}.")
    reason = _what_is_wrong(path)
    if reason is not None:
        raise CheckpointError(f"{field} '{path}': {reason}; {_FIX}.")
    return path


def _unreadable(path: Path, field: str, exc: BaseException) -> CheckpointError:
    """The sentence for a file torch could not load (torch's advice to set weights_only=False is left out on purpose)."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return CheckpointError(
            f"{field} '{path}': the file holds the Python object {found.group(1)} besides tensors and plain data, and mannkit "
            "loads no code from checkpoint files; give a checkpoint written by mannkit fit (its configuration is plain data)."
        )
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    first = first.split(". ")[0].rstrip(".")
    return CheckpointError(f"{field} '{path}': the file cannot be read as a PyTorch checkpoint ({first}); {_FIX}.")


class CheckedLoading:
    """Mixin for LightningModules: ``load_from_checkpoint`` of a file that is not a checkpoint is one sentence,
    and ``checkpoint_step`` holds the training step of the checkpoint the weights came from (None if none), so
    that ``validate``/``test``/``predict`` (where ``trainer.global_step`` is 0) can name pictures and rows by it."""

    checkpoint_step: int | None = None

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the checkpoint's ``global_step`` (Lightning calls this in every stage that loads weights)."""
        step = checkpoint.get("global_step")
        self.checkpoint_step = int(step) if isinstance(step, int) else None
        parent = getattr(super(), "on_load_checkpoint", None)
        if parent is not None:
            parent(checkpoint)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
        """As :meth:`lightning.pytorch.LightningModule.load_from_checkpoint`, with the file checked first."""
        local = isinstance(checkpoint_path, (str, Path)) and "://" not in str(checkpoint_path)
        if local:
            check_checkpoint_file(checkpoint_path, "load_from_checkpoint")
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)  # type: ignore[misc]
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as exc:
            if not local:
                raise
            raise _unreadable(Path(checkpoint_path), "load_from_checkpoint", exc) from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint plugin with atomic local writes, readable-or-one-sentence loads, no non-finite saves.

    The ``mannkit`` command uses it unless ``trainer.plugins`` names another checkpoint IO; in Python pass
    ``Trainer(plugins=[AtomicCheckpointIO()])``. Remote paths (``s3://``...) go to Lightning's own save.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically; refuse NaN/inf weights (the old file stays)."""
        bad = non_finite_tensors(checkpoint.get("state_dict", {}))
        if bad:
            raise CheckpointError(
                f"checkpoint '{path}': the weights {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} hold NaN or inf, "
                "so they were not saved and the file keeps its previous content; lower the learning rate or set "
                "trainer.gradient_clip_val."
            )
        if "://" in str(path) and not str(path).startswith("file://"):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_save(checkpoint, str(path).removeprefix("file://"))

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Read ``path`` with :func:`read_checkpoint` (local files), else Lightning's own load."""
        if "://" in str(path) and not str(path).startswith("file://"):
            return super().load_checkpoint(path, map_location, weights_only)
        return read_checkpoint(str(path).removeprefix("file://"), map_location or "cpu", weights_only=weights_only is not False)
