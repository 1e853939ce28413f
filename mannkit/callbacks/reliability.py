"""What the ``mannkit`` command adds to every run so that nothing is lost and nothing is silently wrong.

- :func:`reliable_trainer_parts`: every ``ModelCheckpoint`` becomes a :class:`~mannkit.callbacks.Checkpoint`
  (``last.ckpt`` always newest, no non-finite saves, Ctrl-C saves), one ``Checkpoint(save_last=True)``
  is added when a config has none, a :class:`~mannkit.callbacks.TrainingGuard` is added unless the
  config lists one, a :class:`~mannkit.callbacks.interrupt.SafeInterrupt` (Ctrl-C raises at a batch
  boundary), and checkpoints are written by :class:`~mannkit.callbacks.AtomicCheckpointIO`
  unless ``trainer.plugins`` names another checkpoint IO;
- :func:`find_last_checkpoint`: what ``--ckpt_path last`` means on the command line, the newest
  ``last.ckpt`` of the earlier runs under the run folder (each run gets a new ``version_N`` folder, so
  Lightning's own look-up, which searches only the new run's folder, never finds one);
- :func:`resume_command`: the command line that resumes a run;
- :func:`check_resume`: ``fit --ckpt_path`` with a checkpoint of another model than the config's is
  refused, and config settings the checkpoint's optimizer state overrides are named;
- :func:`claim_run_folders` and :func:`remove_unused_run_folders`: each run gets its own ``version_N``
  folder, created atomically (two runs started together never share one), and a run that fails before
  its first training step leaves no empty folder behind.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import CheckpointIO

from mannkit.callbacks.checkpoint import Checkpoint
from mannkit.callbacks.checkpoint_io import AtomicCheckpointIO
from mannkit.callbacks.guard import TrainingGuard
from mannkit.callbacks.interrupt import SafeInterrupt

__all__ = [
    "check_resume",
    "claim_run_folders",
    "find_last_checkpoint",
    "model_differences",
    "reliable_trainer_parts",
    "remove_unused_run_folders",
    "resume_command",
]

_log = logging.getLogger("mannkit")
_LAST = re.compile(r"^last(-v\d+)?\.ckpt$")
# where Lightning puts checkpoints under a root: no logger, TensorBoardLogger(name) and (name/sub)
_LAYOUTS = ("checkpoints", "*/version_*/checkpoints", "*/*/version_*/checkpoints")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def reliable_trainer_parts(
    callbacks: Any, plugins: Any, enable_checkpointing: bool | None = True, command: str | None = None
) -> tuple[list[Callback], list[Any]]:
    """The trainer's ``callbacks`` and ``plugins`` with mannkit's reliability defaults (see the module docstring).

    Args:
        callbacks: the instantiated ``trainer.callbacks`` (None, one, or a list).
        plugins: the instantiated ``trainer.plugins`` (None, one, or a list).
        enable_checkpointing: ``trainer.enable_checkpointing``; False adds no checkpoint callback.
        command: the command that resumes the run, given to each :class:`Checkpoint` for its Ctrl-C message.
    """
    callbacks, plugins = _as_list(callbacks), _as_list(plugins)
    for callback in callbacks:
        if type(callback) is ModelCheckpoint:
            callback.__class__ = Checkpoint  # Checkpoint adds behaviour only, no state of its own in __init__
    if enable_checkpointing is not False and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
        callbacks.append(Checkpoint(save_last=True))
    for callback in callbacks:
        if isinstance(callback, Checkpoint) and command and callback.resume_command is None:
            callback.resume_command = command
    if not any(isinstance(c, TrainingGuard) for c in callbacks):
        callbacks.append(TrainingGuard())
    if not any(isinstance(c, SafeInterrupt) for c in callbacks):
        callbacks.append(SafeInterrupt())  # Ctrl-C raises at a batch boundary (mannkit.callbacks.interrupt)
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return callbacks, plugins


def resume_command(argv: Sequence[str]) -> str:
    """``mannkit fit ...`` with the arguments of ``argv`` minus any ``--ckpt_path`` (the caller appends one).

    >>> resume_command(["fit", "--config", "c.yaml", "--ckpt_path", "old.ckpt", "--trainer.max_steps", "9"])
    'mannkit fit --config c.yaml --trainer.max_steps 9'
    """
    kept: list[str] = []
    skip = False
    for arg in list(argv)[1:] if argv and argv[0] == "fit" else list(argv):
        if skip:
            skip = False
        elif arg == "--ckpt_path":
            skip = True
        elif not arg.startswith("--ckpt_path="):
            kept.append(arg)
    return shlex.join(["mannkit", "fit", *kept])


def find_last_checkpoint(roots: Iterable[str | Path], dirpaths: Iterable[str | Path] = ()) -> Path | None:
    """The newest ``last.ckpt`` (or ``last-vN.ckpt``) in ``dirpaths`` or in the run folders under ``roots``."""
    found: list[Path] = []
    folders = [Path(d) for d in dirpaths]
    for root in roots:
        folders += [p for layout in _LAYOUTS for p in Path(root).glob(layout)]
    for folder in folders:
        if folder.is_dir():
            found += [p for p in folder.iterdir() if _LAST.match(p.name) and p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def claim_run_folders(loggers: Iterable[Any]) -> list[Path]:
    """Create each logger's ``version_N`` folder now, atomically, and fix the logger's version to it.

    Lightning picks ``max(existing versions) + 1`` when it first logs, so two runs started together pick
    the same ``version_N`` and mix their event files, ``config.yaml`` and pictures. Here ``os.mkdir``
    (which fails when the folder exists) claims the number; a run that loses the race takes the next one.
    Loggers with a version set in the config, and those not on the local disk, are left as they are;
    loggers sharing a root share the claimed folder. Call on global rank 0 only.

    Returns:
        The folders created (each version folder, then its parent if this made it), for
        :func:`remove_unused_run_folders`.
    """
    claimed: dict[str, int] = {}
    created: list[Path] = []
    for logger in loggers:
        root = getattr(logger, "root_dir", None)
        if getattr(logger, "_version", "") is not None or not isinstance(root, str) or "://" in root:
            continue
        if root not in claimed:
            version = logger._get_next_version()
            new_root = not os.path.isdir(root)
            os.makedirs(root, exist_ok=True)
            while True:
                try:
                    os.mkdir(os.path.join(root, f"version_{version}"))
                    break
                except FileExistsError:  # another run took it since we looked
                    version += 1
            claimed[root] = version
            created += [Path(root) / f"version_{version}", *([Path(root)] if new_root else [])]
        logger._version = claimed[root]
    return created


def remove_unused_run_folders(folders: Iterable[Path], trainer: Any, start_step: int = 0) -> list[Path]:
    """After a failed run: remove the folders it claimed if it trained no step and saved no checkpoint there.

    ``start_step`` is the step the run began at (that of the checkpoint it resumed).

    They hold at most its ``config.yaml``, ``hparams.yaml`` and an event file of the sanity check, which
    only hide the run folders that matter. Returns the folders removed.
    """
    removed = []
    if getattr(trainer, "global_step", 0) > start_step:
        return removed
    for folder in folders:
        if not folder.name.startswith("version_"):  # a parent this run made: only if nothing else is in it
            try:
                folder.rmdir()
                removed.append(folder)
            except OSError:
                pass
        elif folder.is_dir() and not any(p.suffix == ".ckpt" for p in folder.rglob("*")):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def model_differences(config: Any, saved: Any, where: str = "model") -> list[tuple[str, Any, Any]]:
    """``(field, saved value, config value)`` where the config's model differs from a checkpoint's.

    Class paths compare by the class they name (``mannkit.nn.LSTMController`` is
    ``mannkit.nn.controllers.LSTMController``); a config value of None (a size to infer, a default
    optimizer) and a field only one side has are no difference.
    """
    from mannkit.core.config import resolve_class
    from mannkit.core.errors import MannkitError

    if hasattr(config, "as_dict"):
        config = config.as_dict()
    if config is None or saved is None:
        return []
    if isinstance(config, Mapping) and isinstance(saved, Mapping):
        found = []
        for key in config.keys() & saved.keys():
            if key == "class_path":
                try:
                    same = resolve_class(str(config[key])) is resolve_class(str(saved[key]))
                except MannkitError:
                    same = config[key] == saved[key]
                found += [] if same else [(f"{where}.class_path", saved[key], config[key])]
            elif key != "__path__":
                found += model_differences(config[key], saved[key], f"{where}.{key}")
        return sorted(found)
    if isinstance(config, (list, tuple)) and isinstance(saved, (list, tuple)) and len(config) == len(saved):
        return [d for i, (c, s) in enumerate(zip(config, saved)) for d in model_differences(c, s, f"{where}[{i}]")]
    return [] if config == saved else [(where, saved, config)]


def check_resume(ckpt_path: str, config_model: Any, saved_model: Mapping[str, Any]) -> None:
    """``fit --ckpt_path``: refuse a checkpoint of another model; say which optimizer settings are not the config's.

    Resuming builds the checkpoint's model, so a config that describes another one (another class, sizes,
    memory ...) would be silently replaced: that is refused. The optimizer and scheduler state, learning
    rate included, come back from the checkpoint, so config changes there are named as ignored.
    """
    differences = model_differences(config_model, saved_model)
    optimizer = tuple(f"model.init_args.{key}" for key in ("optimizer", "lr_scheduler"))
    other = [d for d in differences if not d[0].startswith(optimizer)]
    if other:
        field, saved, given = other[0]
        more = f" (and {len(other) - 1} more)" if len(other) > 1 else ""
        from mannkit.core.errors import ConfigError

        raise ConfigError(
            f"--ckpt_path {ckpt_path}: the checkpoint holds another model than the config: {field} is {saved!r} "
            f"in the checkpoint and {given!r} in the config{more}; resume with the config the checkpoint was trained "
            "with, or start a new run without --ckpt_path."
        )
    if differences:
        ignored = ", ".join(f"{field} ({given!r}; the checkpoint's {saved!r} is kept)" for field, saved, given in differences)
        _log.warning(
            f"mannkit fit: resuming {saved_model['class_path'].rpartition('.')[2]} from {ckpt_path}, whose optimizer "
            f"state comes back with it, so these settings of the config are ignored: {ignored}"
        )
