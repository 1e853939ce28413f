"""The ``mannkit`` command: ``mannkit fit|validate|test|predict --config ...`` and ``mannkit plugins``.

A LightningCLI that loads every plugin before parsing (so YAML can name classes by
their short registered names), checks config files for unknown classes and options
with one-sentence messages, and turns mannkit's own errors into one line instead
of a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mannkit.config_check import check_config, check_model_fits_data, check_optimizers, config_paths, import_builtins
from mannkit.core.errors import ConfigError, MannkitError

__all__ = ["MannkitCLI", "main", "check_config", "format_plugins"]

SUBCOMMANDS = ("fit", "validate", "test", "predict")
_log = logging.getLogger("mannkit")


def format_plugins() -> str:
    """The ``mannkit plugins`` listing: every registered class of every kind, under the plugin that defines it.

    The core's own classes come first, then each plugin with its distribution and version, what
    it registers or why it failed to load, then any class defined outside the core and every
    plugin (a script, a test module), with its module and distribution. Each class is credited
    from its own module (see :meth:`mannkit.core.registry.Registry.source_of`), not from the
    plugin that imported it first.
    """
    from importlib.metadata import PackageNotFoundError, version

    from mannkit.core.registry import registry

    import_builtins()  # tasks, systems and callbacks register on import

    def items(plugin: str) -> list[str]:
        return [f"    {e.kind}:{e.name}" for e in sorted(registry.entries(), key=lambda e: (e.kind, e.name)) if e.plugin == plugin]

    try:
        core_version = version("mannkit")
    except PackageNotFoundError:
        core_version = "?"
    lines = [f"core: mannkit {core_version} (built-in)", *items("mannkit")]
    for name, info in sorted(registry.plugins.items()):
        head = f"{name}: {info.distribution} {info.version} (module {info.module})"
        if info.disabled:
            lines.append(f"{head} DISABLED")
        elif info.error:
            lines.append(f"{head} FAILED: {info.error}")
        else:
            lines += [head, *items(name)]
    lines += [f"{name}: named in MANNKIT_DISABLE_PLUGINS but no installed plugin (misspelt?)" for name in registry.unknown_disabled]
    known = {"mannkit", *registry.plugins}
    others = [e for e in registry.entries() if e.plugin not in known]
    if others:
        lines.append("outside any plugin (registered by a script or a test):")
        lines += [f"    {e.kind}:{e.name} (module {e.cls.__module__}, distribution {e.distribution})" for e in others]
    return "\n".join(lines)


# -- the CLI ------------------------------------------------------------------------------
def _cli_class() -> type:
    from lightning.pytorch.cli import LightningCLI

    class MannkitCLI(LightningCLI):
        """LightningCLI with mannkit's defaults (models and tasks chosen by class_path)."""

        def before_fit(self) -> None:
            """Before any subcommand runs: the system and the data must be made for each other."""
            check_model_fits_data(self.model, self.datamodule)

        before_validate = before_test = before_predict = before_fit

        def init_parser(self, **kwargs: Any) -> Any:
            """Lightning's parser, checking the optimizer configs of every parsed config (also for --print_config)."""
            parser = super().init_parser(**kwargs)
            parse_common = parser._parse_common  # jsonargparse's last step before printing and validating

            def _parse_common(cfg: Any, *args: Any, **kw: Any) -> Any:
                check_optimizers(cfg)
                return parse_common(cfg, *args, **kw)

            parser._parse_common = _parse_common
            return parser

        def add_arguments_to_parser(self, parser: Any) -> None:
            """Every run logs the learning rate (Lightning's LearningRateMonitor) and the gradient norm (GradNormMonitor).

            ``--lr_monitor null`` / ``--grad_norm null`` (or ``lr_monitor: null`` in YAML) turns one off;
            ``--lr_monitor.init_args.logging_interval epoch`` changes an option.
            """
            from lightning.pytorch.callbacks import LearningRateMonitor

            from mannkit.callbacks.grad_norm import GradNormMonitor

            for key, cls, init_args in (("lr_monitor", LearningRateMonitor, {"logging_interval": "step"}),
                                        ("grad_norm", GradNormMonitor, {})):
                parser.add_lightning_class_args(cls, key, subclass_mode=True, required=False)
                parser.set_defaults({key: {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}})

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
            """The default monitors, less those turned off (null), those already in trainer.callbacks, and
            LearningRateMonitor when the run has no logger (it refuses to start without one)."""
            from lightning.pytorch.callbacks import LearningRateMonitor

            listed = config.get("callbacks") or []
            listed = listed if isinstance(listed, list) else [listed]
            no_logger = config.get("logger") is False or config.get("logger") == []
            kept = [
                c for c in callbacks
                if c is not None and not any(type(o) is type(c) for o in listed)
                and not (no_logger and isinstance(c, LearningRateMonitor))
            ]
            return super()._instantiate_trainer(config, kept)

        def _parse_ckpt_path(self) -> None:
            """With ``--ckpt_path``, build the model the checkpoint was trained with (its saved config wins)."""
            from mannkit.callbacks.checkpoint_io import read_checkpoint

            subcommand = self.config.get("subcommand")
            if not subcommand:
                return
            ckpt_path = self.config[subcommand].get("ckpt_path")
            if not ckpt_path and subcommand != "fit":
                _log.warning(
                    f"mannkit {subcommand}: no --ckpt_path was given, so the model is evaluated with freshly initialised "
                    "(random) weights; pass --ckpt_path with a trained checkpoint, or --ckpt_path last."
                )
            if ckpt_path == "last":
                ckpt_path = self._last_checkpoint(subcommand)
            if not ckpt_path or ckpt_path in ("best", "hpc", "registry"):
                return
            if not Path(ckpt_path).is_file():
                raise ConfigError(
                    f"--ckpt_path: the file '{ckpt_path}' does not exist; give the path of a .ckpt file "
                    "(checkpoints are under the run's checkpoints/ folder)."
                )
            checkpoint = read_checkpoint(ckpt_path)
            self.start_step = int(checkpoint.get("global_step") or 0)  # what a failed resumed run had not trained
            hparams = dict(checkpoint.get("hyper_parameters", {}))
            class_path = hparams.pop("_class_path", None)
            hparams.pop("_instantiator", None)
            if class_path is None:
                return
            for key in ("optimizer", "lr_scheduler"):  # short names (a model built in Python) spelt out for jsonargparse
                if isinstance(hparams.get(key), Mapping):
                    from mannkit.systems.optim import check_optimizer

                    hparams[key] = check_optimizer(hparams[key], f"the checkpoint's {key}", scheduler=key == "lr_scheduler")
            model = {"class_path": class_path, "init_args": hparams}
            if subcommand == "fit":
                from mannkit.callbacks.reliability import check_resume

                check_resume(str(ckpt_path), self.config[subcommand].get("model"), model)
            try:
                self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)
            except Exception as exc:  # jsonargparse's ArgumentError: a saved argument this version does not take
                if type(exc).__name__ != "ArgumentError":
                    raise
                from mannkit.core.parser_errors import checkpoint_mismatch

                raise ConfigError(checkpoint_mismatch(str(ckpt_path), model, str(exc))) from None

        def _last_checkpoint(self, subcommand: str) -> str | None:
            """``--ckpt_path last``: the newest last.ckpt of the earlier runs under the run folder (None, fit only: none yet)."""
            from mannkit.callbacks.reliability import find_last_checkpoint

            config = self.config[subcommand]
            roots = [config.get("trainer.default_root_dir") or "."]
            for logger in config.get("trainer.logger") if isinstance(config.get("trainer.logger"), list) else [config.get("trainer.logger")]:
                save_dir = logger.get("init_args", {}).get("save_dir") if hasattr(logger, "get") else None
                roots += [save_dir] if save_dir else []
            dirpaths = [
                c.get("init_args", {}).get("dirpath") for c in config.get("trainer.callbacks") or [] if hasattr(c, "get")
            ]
            found = find_last_checkpoint(roots, [d for d in dirpaths if d])
            if found is None and subcommand != "fit":
                raise ConfigError(
                    f"--ckpt_path last: there is no last.ckpt in the run folders under {', '.join(map(str, roots))}; "
                    "give the path of a .ckpt file, or set trainer.default_root_dir to the folder of the run."
                )
            _log.warning(
                f"mannkit {subcommand}: --ckpt_path last is {found}" if found else
                f"mannkit fit: --ckpt_path last: no last.ckpt under {', '.join(map(str, roots))} yet, so training starts from scratch"
            )
            self.config[subcommand]["ckpt_path"] = str(found) if found else None
            return str(found) if found else None

        def parse_arguments(self, parser: Any, args: Any) -> None:
            """Parse as LightningCLI does, keeping the arguments for the resume command of the Ctrl-C message."""
            self.argv = [str(a) for a in (sys.argv[1:] if args is None else args)] if not isinstance(args, dict) else []
            super().parse_arguments(parser, args)

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            """The trainer with mannkit's reliability defaults (:func:`mannkit.callbacks.reliability.reliable_trainer_parts`)."""
            from mannkit.callbacks.reliability import claim_run_folders, reliable_trainer_parts, resume_command

            config = self._get(self.config_init, "trainer", default={})
            callbacks, plugins = reliable_trainer_parts(
                kwargs.pop("callbacks", config.get("callbacks")), kwargs.pop("plugins", config.get("plugins")),
                kwargs.get("enable_checkpointing", config.get("enable_checkpointing")), resume_command(self.argv),
            )
            trainer = super().instantiate_trainer(callbacks=callbacks, plugins=plugins, **kwargs)
            self.run_folders = claim_run_folders(trainer.loggers) if _first_process() else []
            return trainer

        def _run_subcommand(self, subcommand: str) -> None:
            """Run it; if it fails before its first step, remove the run folder it claimed (nothing is in it)."""
            from mannkit.callbacks.reliability import remove_unused_run_folders

            try:
                super()._run_subcommand(subcommand)
            except BaseException:
                remove_unused_run_folders(getattr(self, "run_folders", []), self.trainer, getattr(self, "start_step", 0))
                raise

    return MannkitCLI


def _first_process() -> bool:
    """Global rank 0 (of node 0): the process that names the run folder (Lightning's DDP children do not)."""
    import os

    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    node = os.environ.get("NODE_RANK") or os.environ.get("GROUP_RANK") or "0"
    return getattr(rank_zero_only, "rank", 0) == 0 and node == "0"


def MannkitCLI(*args: Any, **kwargs: Any) -> Any:  # noqa: N802  (a factory so that importing mannkit.cli stays cheap)
    """Build the CLI: plugins loaded, model and data chosen by ``class_path``, the model owning its optimizer."""
    import lightning.pytorch as pl

    import_builtins()
    kwargs.setdefault("subclass_mode_model", True)
    kwargs.setdefault("subclass_mode_data", True)
    kwargs.setdefault("save_config_kwargs", {"overwrite": True})
    kwargs.setdefault("auto_configure_optimizers", False)
    parser_kwargs = {"description": "mannkit: memory-augmented neural networks on Lightning.", "exit_on_error": False}
    parser_kwargs.update({name: {"exit_on_error": False} for name in SUBCOMMANDS})
    kwargs.setdefault("parser_kwargs", parser_kwargs)
    return _cli_class()(pl.LightningModule, pl.LightningDataModule, *args, **kwargs)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``mannkit`` console script (returns None: see LIGHTNING_NOTES)."""
    from_shell = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if from_shell:
        _guard_second_interrupt()
        _quiet_known_third_party_warnings(argv[0] if argv else None)
    try:
        if argv[:1] == ["plugins"]:
            print(format_plugins())
            return
        if argv and argv[0] in SUBCOMMANDS:
            for path in config_paths(argv):
                check_config(path)
        MannkitCLI(args=None if from_shell else argv)
    except SystemExit as exc:  # Lightning's SIGTERMException has status 0: a killed run must not look like a finished one
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exc, SIGTERMException):
            raise SystemExit(143) from None  # 128 + SIGTERM, the shell's status for a process ended by it
        raise
    except Exception as exc:
        cause = _mannkit_error_in(exc)
        if cause is None and type(exc).__name__ == "ArgumentError":
            cause = _summarise_parser_error(str(exc), argv[0] if argv else "fit", argv)
        if cause is None:
            raise
        from mannkit.core.errors import TrainingError

        if not isinstance(cause, TrainingError) or _first_process():  # every DDP rank stops together: one says why
            print(f"mannkit: error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None


def _quiet_known_third_party_warnings(subcommand: str | None = None) -> None:
    """Hide known messages of Lightning and torch that a mannkit user cannot act on; every other one shows.

    Lightning's FutureWarning about torch's ``LeafSpec`` (twice per run on torch >= 2.10), inductor's about
    ``torch._prims_common.check`` (once per compiled graph) and Lightning's advertisement for its cloud
    logger, which came before the first line of every run. For ``validate``, ``test`` and ``predict`` also
    Lightning's advice to add the callbacks a checkpoint was made with (e.g. the ``Timer`` of
    ``--trainer.max_time``): only ``fit`` restores callback state, so for these it asks for nothing useful.
    """
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*torch\._prims_common\.check. is deprecated.*", category=FutureWarning)
    if subcommand in ("validate", "test", "predict"):
        warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks used to create")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in str(record.getMessage())
    )


def _guard_second_interrupt() -> None:
    """Ctrl-C stops the run once; a second Ctrl-C (or ``timeout -s INT``'s second signal) cannot cut the save short.

    The first SIGINT raises ``KeyboardInterrupt``, at the next batch boundary while a trainer runs
    (:mod:`mannkit.callbacks.interrupt`: raised anywhere, it could leave TensorBoard's writer thread
    asleep and the shutdown waiting on it), at once otherwise: Lightning then saves ``last.ckpt`` and
    mannkit prints the resume command. A later SIGINT, more than ``FORCE_AFTER`` (2) seconds after the
    first with that boundary still not reached, raises at once. Lightning ignores SIGINT while it shuts down but
    restores the handler it found when it tears down, so without this guard a second signal arriving
    then raised ``KeyboardInterrupt`` inside the interpreter's exit hooks, a traceback after the resume
    message. Every later SIGINT prints one line and is ignored; the process exits by itself moments later
    (with status 1: at exit SIGINT is set to ignored, since the interpreter's finalisation would otherwise
    put back the default action, which kills the process). A SIGINT that is ignored already (a background
    job without job control) stays ignored.
    """
    import atexit
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    state = {"interrupted": False, "told": False}

    def on_sigint(signum: int, frame: Any) -> None:
        from mannkit.callbacks.interrupt import FORCE_AFTER, request_stop, stop_pending

        if not state["interrupted"]:
            state["interrupted"] = True
            atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)  # the first exit hook to run
            if request_stop():  # a trainer runs: it raises KeyboardInterrupt at the next batch (SafeInterrupt)
                return
            raise KeyboardInterrupt
        if stop_pending(longer_than=FORCE_AFTER):  # no batch boundary for a while (a long compile, a slow batch): now
            raise KeyboardInterrupt
        if not state["told"]:
            state["told"] = True
            print("mannkit: already stopping: saving the newest state and shutting down (kill -9 aborts at once).", file=sys.stderr)

    signal.signal(signal.SIGINT, on_sigint)


def _summarise_parser_error(message: str, subcommand: str, argv: list[str] | tuple[str, ...] = ()) -> str:
    """Turn jsonargparse's nested report into one sentence: the dotted field, what was wrong, the fix.

    ``argv``: the command line, to tell an option given as ``--trainer.callbacks.<option>`` (which sets
    the last callback of the list only) from a misspelt one.

    >>> _summarise_parser_error('''Parser key "model":
    ...   Errors:
    ...     - Problem with given class_path 'X':
    ...         Parser key "core":
    ...             Parser key "slots":
    ...               Expected a <class 'int'>. Got value: many
    ...     - Expected a <class 'NoneType'>''', "fit")
    "model.init_args.core.slots: expected an integer, got 'many'; fix that value in the config or on the command line ('mannkit fit --help' lists the options)."
    """
    from mannkit.core.parser_errors import explain

    help_hint = f"('mannkit {subcommand} --help' lists the options)"
    problem = explain(message)
    if problem is None:
        leaf = message.strip().splitlines()[-1].strip().rstrip(".") if message.strip() else message
        lowered = leaf.lower()
        if "does not accept option" in lowered or "unrecognized arguments" in lowered or "not expected" in lowered:
            return f"{leaf}; check the spelling {help_hint}."
        return f"{leaf}; fix that value in the config or on the command line {help_hint}."
    if problem.kind == "unknown_option" and problem.field.startswith("trainer.callbacks.init_args.") \
            and any(a.startswith("--trainer.callbacks.") for a in argv):
        return problem.sentence(
            "--trainer.callbacks.<option> sets an option of the last callback in the list only; to set another "
            "callback's option, copy the config and set it under that callback's init_args"
        )
    return problem.sentence(
        f"check the spelling {help_hint}" if problem.kind == "unknown_option"
        else f"fix that value in the config or on the command line {help_hint}"
    )


def _mannkit_error_in(exc: BaseException | None) -> MannkitError | None:
    """The first of mannkit's own errors in an exception chain (jsonargparse and Lightning wrap them)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, MannkitError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


if __name__ == "__main__":  # pragma: no cover
    main()
