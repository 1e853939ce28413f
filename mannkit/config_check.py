"""Checks of a config before anything runs: unknown classes and options, optimizers, model against data.

``mannkit fit|validate|test|predict`` runs :func:`check_config` on every ``--config`` file before
LightningCLI parses it, so that a misspelt class or option ends in one sentence naming the field
(:class:`~mannkit.core.errors.ConfigError`) instead of a parser dump. ``mannkit.cli`` re-exports
:func:`check_config`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mannkit.core.errors import ConfigError, suggest

__all__ = ["check_config", "check_model_fits_data", "check_optimizers", "config_paths", "import_builtins"]


def import_builtins() -> None:
    """Load the plugins and import the core's own components, so YAML can name them all by short name."""
    from mannkit.core.registry import load_plugins

    load_plugins()
    import mannkit.callbacks  # noqa: F401
    import mannkit.cell  # noqa: F401
    import mannkit.systems  # noqa: F401
    import mannkit.tasks  # noqa: F401


# -- config checks ------------------------------------------------------------------------
def _check_component(node: Mapping[str, Any], where: str, owner: type | None = None, option: str | None = None) -> None:
    from mannkit.core.config import resolve_class
    from mannkit.core.parser_errors import explain_class

    from mannkit.core.registry import DisabledPluginError

    try:
        cls = resolve_class(str(node["class_path"]), f"{where}.class_path")
    except DisabledPluginError:
        raise
    except ConfigError:  # the same sentence as a dotted override gets: a suggestion among the classes that fit
        problem = explain_class(str(node["class_path"]), f"{where}.class_path", owner, option)
        raise ConfigError(problem.sentence()) from None
    init_args = node.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise ConfigError(f"{where}.init_args must be a mapping of option names to values, got {init_args!r}.")
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = None
    else:
        accepted = [n for n in params if n != "self"]
    if accepted is not None:
        for key in init_args:
            if key not in accepted:
                raise ConfigError(
                    f"{where}.init_args.{key}: {cls.__name__} has no option '{key}'{suggest(str(key), accepted)} "
                    f"(its options: {', '.join(accepted) or 'none'})."
                )
    for key, value in init_args.items():
        _walk(value, f"{where}.init_args.{key}", cls, str(key))


_TORCH_OPTIONS = ("model.init_args.optimizer", "model.init_args.lr_scheduler")


def _walk(node: Any, where: str, owner: type | None = None, option: str | None = None) -> None:
    """Check every component under ``node``; ``owner.option`` is the constructor option that holds it, if known."""
    if isinstance(node, Mapping):
        if where in _TORCH_OPTIONS and "class_path" in node:  # a torch.optim class, not a mannkit component
            from mannkit.systems.optim import check_optimizer

            check_optimizer(node, where, scheduler=where.endswith("lr_scheduler"))
            return
        if "class_path" in node:
            _check_component(node, where, owner, option)
            return
        for key, value in node.items():
            _walk(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{where}[{i}]", owner, option)


def check_config(path: str | Path) -> None:
    """Check a YAML config file for unknown class names and options; raise :class:`ConfigError` naming the field."""
    import yaml

    import_builtins()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config: the file '{path}' does not exist; give the path of a YAML file such as configs/ntm/copy.yaml.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"--config {path}: the file is not valid YAML{at}; fix the indentation or quoting there.") from None
    if data is None:
        return
    if not isinstance(data, Mapping):
        raise ConfigError(f"--config {path}: the top level must be a mapping (model:, data:, trainer:), not a {type(data).__name__}.")
    for key in ("model", "data"):
        if key in data:
            _walk(data[key], key)
    trainer = data.get("trainer") or {}
    if isinstance(trainer, Mapping):
        for key in ("callbacks", "logger", "plugins"):
            if key in trainer:
                _walk(trainer[key], f"trainer.{key}")


def check_model_fits_data(model: Any, data: Any) -> None:
    """Raise :class:`ConfigError` when a SequenceSystem is given data that is no sequence task (e.g. bAbI).

    Sequence tasks know their ``input_size`` when built; a SequenceSystem with explicit sizes would
    otherwise fail inside its first step. (QASystem checks its data itself at setup, when bAbI's sizes exist.)
    """
    if data is None or "SequenceSystem" not in [cls.__name__ for cls in type(model).__mro__] or hasattr(data, "input_size"):
        return
    raise ConfigError(
        f"data.class_path: SequenceSystem trains on sequence tasks (input, target and mask per step) such as CopyTask, "
        f"but {type(data).__name__} has no input_size; use QASystem as the model for question-answering data "
        "such as BabiDataModule, or a sequence task as the data."
    )


def check_optimizers(cfg: Any) -> None:
    """Check the model's optimizer and scheduler configs in a parsed config, moving stray overrides into place.

    They are plain ``dict`` arguments (plain data in checkpoints), so jsonargparse puts a dotted override
    such as ``--model.init_args.optimizer.init_args.lr 100`` beside their ``init_args``, as the text
    ``'100'``; :func:`mannkit.systems.optim.check_optimizer` moves it into ``init_args`` as a number and
    refuses values the optimizer would refuse, before any run folder exists.
    """
    from mannkit.systems.optim import DEFAULT_OPTIMIZER, check_optimizer

    init_args = cfg.get("model.init_args") if hasattr(cfg, "get") else None
    if init_args is None or not hasattr(init_args, "get"):
        return
    for key, scheduler in (("optimizer", False), ("lr_scheduler", True)):
        value = init_args.get(key)
        if isinstance(value, Mapping) and "class_path" not in value and key == "optimizer":
            value = {**DEFAULT_OPTIMIZER, **value}  # an override of the default optimizer's options
        if isinstance(value, Mapping):
            init_args[key] = check_optimizer(value, f"model.init_args.{key}", scheduler=scheduler)


def config_paths(argv: list[str]) -> list[str]:
    """The paths given to ``--config`` (or ``-c``) on a command line, in order."""
    paths = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    return paths
