"""SequenceSystem: trains any :class:`~mannkit.core.interfaces.SequenceModel` on input/target/mask sequences.

Batches are dicts with ``input [B, T, I]``, ``target``, ``mask [B, T]`` and optionally
``reference_bits [B]`` (the cost of an optimal reference predictor); see :class:`~mannkit.tasks.Batch`.
The loss is the task's (``SequenceTask.loss``, read at setup; see :mod:`mannkit.systems.losses`):
binary cross-entropy over 0/1 bits ``[B, T, O]`` (the cost logged in bits per sequence, as in the
NTM paper), cross-entropy per step over class ids ``[B, T]`` (per-step and per-sequence accuracy),
or mean squared error over real values ``[B, T, O]`` (MSE), each averaged over the scored steps.

Training may add, each logged as its own term (the terms sum to ``train/loss``):

- ``train/loss_main``: the task's loss;
- ``train/loss_sparsity``: ``sparsity_weight`` x the mean entropy of the heads' weightings;
- ``train/loss_consistency``: ``consistency_weight`` x their mean L1 change between steps
  (both from the model's trace, see :mod:`mannkit.systems.regularisers`);
- ``train/loss_aux_<name>``: ``weight`` x the loss of each auxiliary batch a training batch
  carries under ``"aux"`` (see :class:`~mannkit.tasks.MultiTask`);
- ``train/loss_<name>``: each loss term the model returns itself in ``SequenceOutput.losses``
  (ACT's ``ponder``), already weighted by the model.

A model's ``SequenceOutput.stats`` (scalars such as ACT's ``ponder_mean``) are logged as
``train/<name>``, ``val/<name>`` and, per test set, ``test/<set>/<name>``, never added to the loss;
a stat named ``*_max`` is reduced over batches by its maximum, the others by their mean.
:class:`~mannkit.callbacks.LengthGeneralisation` tabulates and draws the test sets' stats beside
the task's metrics (ACT's ponder time against the test sets' difficulty).

A ``ce`` batch that says which question and task each scored step answers (``question [B, T]``, ``task [B]``,
as :class:`~mannkit.tasks.BabiSequenceTask` gives) also gets the bAbI per-task error, mean error and failed
tasks, logged and tabulated (``qa_results.md``) by the QA system's code (:mod:`mannkit.systems.task_errors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from mannkit.callbacks.checkpoint_io import CheckedLoading
from mannkit.callbacks.guard import stop_if_not_finite
from mannkit.callbacks.monitor import logs_now
from mannkit.core.config import instantiate, to_config
from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import SequenceModel
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.metrics.keys import test_metric_key
from mannkit.metrics.qa import JudgedTaskError
from mannkit.systems.losses import Objective, masked_bce_loss, objective
from mannkit.systems.optim import DEFAULT_OPTIMIZER, build_optimization, torch_class
from mannkit.systems.regularisers import access_consistency, access_sparsity, weighting_keys
from mannkit.systems.task_errors import NUM_TASKS, carries_questions, log_task_errors, update_task_errors, write_task_results

__all__ = ["SequenceSystem", "masked_bce_loss"]

#: ``model.loss`` values that follow the task's declared loss.
_FOLLOW = (None, "auto")


@register
class SequenceSystem(CheckedLoading, pl.LightningModule):
    """A LightningModule around any sequence model; the model's sizes are derived from the task.

    Args:
        core: the sequence model (e.g. a MemoryCell with its controller, memory and heads).
        input_size: I; left null, it is taken from the task (``data.input_size``) at setup.
        output_size: O; left null, it is taken from the task (``data.output_size``) at setup.
        loss: null (or ``auto``) follows the task's ``loss`` (``bce``, ``ce`` or ``mse``, read at setup);
            an explicit name must agree with the task's.
        optimizer: ``{class_path, init_args}`` of a ``torch.optim`` optimizer (Adam, lr 1e-3 by default);
            ``class_path`` is a class name of ``torch.optim`` (``AdamW``) or a full dotted path.
        lr_scheduler: optional ``{class_path, init_args}`` of a ``torch.optim.lr_scheduler`` (a name there or a
            full dotted path), stepped per epoch.
        sparsity_weight: weight of the memory-access sparsity penalty, the mean entropy (nats) of every
            ``*_weights`` entry of the model's trace; 0 turns it off. Above 0 the model records its trace
            in training (a compiled MemoryCell then runs its steps eagerly).
        consistency_weight: weight of the temporal-consistency penalty, the mean L1 change of every head's
            weighting between consecutive steps; 0 turns it off (records the trace like sparsity).

    Dropout on the controller output belongs to the cell (``MemoryCell(dropout=...)``), where ``h_t`` is.
    """

    def __init__(
        self,
        core: SequenceModel,
        input_size: int | None = None,
        output_size: int | None = None,
        loss: str | None = None,
        optimizer: dict | None = None,
        lr_scheduler: dict | None = None,
        sparsity_weight: float = 0.0,
        consistency_weight: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("sparsity_weight", sparsity_weight), ("consistency_weight", consistency_weight)):
            if not value >= 0.0:
                raise ConfigError(f"model.{name} must be 0 or more, got {value!r}; use 0 to turn the penalty off.")
        if isinstance(core, Mapping):  # rebuilt from a checkpoint's hyper-parameters
            core = instantiate(core, "model.core")
        if not isinstance(core, SequenceModel):
            raise ConfigError(
                f"model.core must be a sequence model such as MemoryCell, got {type(core).__name__}; "
                "give its class_path under model.init_args.core."
            )
        self.objective: Objective = objective("bce" if loss in _FOLLOW else str(loss))  # "auto": bce until setup
        self.loss_setting = loss
        optimizer = dict(optimizer or DEFAULT_OPTIMIZER)
        torch_class(str(optimizer.get("class_path", "")), torch.optim, "model.optimizer.class_path")
        if lr_scheduler is not None:
            torch_class(str(lr_scheduler.get("class_path", "")), torch.optim.lr_scheduler, "model.lr_scheduler.class_path")
        self.core = core
        self.input_size, self.output_size = input_size, output_size
        self.optimizer_config, self.scheduler_config = optimizer, lr_scheduler
        self.sparsity_weight, self.consistency_weight = float(sparsity_weight), float(consistency_weight)
        # plain data only, so checkpoints load with weights_only and rebuild the model anywhere
        self.save_hyperparameters(
            {
                "_class_path": f"{type(self).__module__}.{type(self).__qualname__}",
                "core": to_config(core),
                "input_size": input_size,
                "output_size": output_size,
                "loss": loss,
                "optimizer": optimizer,
                "lr_scheduler": lr_scheduler,
                "sparsity_weight": sparsity_weight,
                "consistency_weight": consistency_weight,
            }
        )
        if input_size is not None or output_size is not None:
            self._bind(input_size, output_size)
        self.val_metrics = nn.ModuleDict(self.objective.metrics())
        self.test_metrics = nn.ModuleDict()
        self.test_set_names: list[str] = ["test"]
        self.test_stat_names: list[str] = []  # the model's stats logged at test (ACT's ponder_mean), for LengthGeneralisation
        self.task_errors = nn.ModuleDict({"val": JudgedTaskError(NUM_TASKS), "test": JudgedTaskError(NUM_TASKS)})  # QA streams

    def _bind(self, input_size: int | None, output_size: int | None) -> None:
        for name, value in (("input_size", input_size), ("output_size", output_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"model.{name} is {value!r} but must be a positive integer; leave both sizes null to take them "
                    "from the task, or give both."
                )
        self.core.bind(input_size, output_size)
        self.input_size, self.output_size = input_size, output_size
        self.hparams["input_size"], self.hparams["output_size"] = input_size, output_size

    def _bind_from_task(self) -> None:
        """Take I and O from the datamodule the first time a trainer runs (before optimizers and DDP exist)."""
        data = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if data is None or not hasattr(data, "input_size"):
            if self.input_size is None:
                raise ConfigError(
                    "model.input_size is not set and there is no task to take it from; "
                    "pass a datamodule with input_size and output_size (a mannkit task) or set both sizes."
                )
            return
        if self.input_size is None:
            self._bind(int(data.input_size), int(data.output_size))
        elif (self.input_size, self.output_size) != (data.input_size, data.output_size):
            raise ConfigError(
                f"the model was built for {self.input_size} inputs and {self.output_size} outputs per step but the task "
                f"{type(data).__name__} gives {data.input_size} and {data.output_size}; use the task settings the model was trained with."
            )

    # -- model --------------------------------------------------------------------------
    def forward(self, x: Tensor, record: bool = False):  # noqa: ANN201
        """``x [B, T, I]`` -> :class:`~mannkit.core.interfaces.SequenceOutput` (logits ``[B, T, O]``)."""
        return self.core(x, record)

    def _check_batch(self, batch: Mapping[str, Tensor]) -> None:
        missing = [key for key in ("input", "target", "mask") if key not in batch]
        if missing:
            raise ConfigError(
                f"SequenceSystem got a batch without {', '.join(repr(k) for k in missing)} (its keys are {sorted(batch)}); "
                "it trains on sequence tasks such as CopyTask: use QASystem for question-answering data such as BabiDataModule."
            )
        x, y, mask = batch["input"], batch["target"], batch["mask"]
        fix = "use the same task settings (bits, widths) as the model was trained with"
        check_shape(x, ("B", "T", self.input_size), "batch input", fix)
        if self.objective.categorical and y.dim() == 3:  # D class ids per step (ACT's addition): logits [B, T, D * C]
            check_shape(y, (x.shape[0], x.shape[1], "D"), "batch target", "a categorical (ce) target is [B, T] or [B, T, D] class ids")
            if self.output_size % y.shape[2]:
                raise ConfigError(
                    f"the task gives {y.shape[2]} class ids per step but the model has {self.output_size} outputs, not a "
                    "multiple of it; leave model.output_size null to take it from the task."
                )
        elif self.objective.categorical:  # class ids, one per step
            check_shape(y, (x.shape[0], x.shape[1]), "batch target", "a categorical (ce) target is [B, T] or [B, T, D] class ids")
        else:
            check_shape(y, (x.shape[0], x.shape[1], self.output_size), "batch target", fix)
        check_shape(mask, (x.shape[0], x.shape[1]), "batch mask")

    def _loss(self, logits: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        return self.objective.loss(logits, batch["target"], batch["mask"])

    def _follow_task_loss(self) -> None:
        """Take the loss the task declares (``data.loss``, ``bce`` if it declares none); an explicit one must agree."""
        data = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        declared = getattr(data, "loss", None) if data is not None else None
        if declared is None:
            return
        if self.loss_setting not in _FOLLOW and self.loss_setting != declared:
            raise ConfigError(
                f"model.loss is {self.loss_setting!r} but the task {type(data).__name__} declares loss {declared!r}; "
                f"set model.loss to null to follow the task, or to {declared!r}."
            )
        if declared != self.objective.name:
            self.objective = objective(str(declared), f"{type(data).__name__}.loss")
            self.val_metrics = nn.ModuleDict(self.objective.metrics())
        self.hparams["loss"] = declared

    # -- steps --------------------------------------------------------------------------
    def training_terms(self, batch: Mapping[str, Any]) -> tuple[dict[str, Tensor], Tensor]:
        """The weighted terms of the training loss (``main``, ``sparsity``, ``consistency``, ``aux_<name>``, and
        the model's own ``SequenceOutput.losses``) of one batch, and the main task's logits ``[B, T, O]``; the loss
        is the sum of the terms."""
        terms, out = self._training_output(batch)
        return terms, out.logits

    def _training_output(self, batch: Mapping[str, Any]) -> tuple[dict[str, Tensor], Any]:
        """:meth:`training_terms` and the model's whole :class:`~mannkit.core.interfaces.SequenceOutput`."""
        self._check_batch(batch)
        penalised = self.sparsity_weight > 0 or self.consistency_weight > 0
        out = self(batch["input"], record=penalised)
        terms = {"main": self._loss(out.logits, batch)}
        if penalised:
            if not weighting_keys(out.trace):
                raise ConfigError(
                    f"model.sparsity_weight and model.consistency_weight need head weightings, but {type(self.core).__name__} "
                    "records no '*_weights' entries in its trace; set both to 0 or use a model with memory heads."
                )
            if self.sparsity_weight > 0:
                terms["sparsity"] = self.sparsity_weight * access_sparsity(out.trace)
            if self.consistency_weight > 0:
                terms["consistency"] = self.consistency_weight * access_consistency(out.trace)
        for name, aux in (batch.get("aux") or {}).items():
            self._check_batch(aux)
            terms[f"aux_{name}"] = aux["weight"] * self._loss(self(aux["input"]).logits, aux)
        for name, term in (getattr(out, "losses", None) or {}).items():  # the model's own terms (ACT's ponder cost)
            if name in terms:
                raise ConfigError(
                    f"{type(self.core).__name__} returns a loss term named {name!r}, which the system already uses; "
                    "rename the model's term."
                )
            terms[name] = term
        return terms, out

    def _log_stats(self, out: Any, prefix: str, batch_size: int, test_set: str | None = None) -> None:
        """Log the model's ``SequenceOutput.stats`` (scalars, not part of the loss) as ``<prefix>/<name>``
        (``test/<set>/<name>`` for a test set); ``*_max`` stats keep the largest value over batches."""
        for name, value in (getattr(out, "stats", None) or {}).items():
            key = test_metric_key(test_set, name) if test_set is not None else f"{prefix}/{name}"
            self.log(key, value, batch_size=batch_size, sync_dist=prefix != "train",
                     reduce_fx="max" if name.endswith("_max") else "mean",
                     **({"add_dataloader_idx": False} if test_set is not None else {}))
            if test_set is not None and name not in self.test_stat_names:
                self.test_stat_names.append(name)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        terms, out = self._training_output(batch)
        logits = out.logits
        loss = torch.stack(list(terms.values())).sum()
        stop_if_not_finite(self, loss)  # the NaN stop, all ranks together (mannkit.callbacks.guard)
        B = logits.shape[0]
        shown = self.objective.train_metrics(logits.detach(), batch["target"], batch["mask"])  # bits_per_seq for bce
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        for name, value in shown.items():
            self.log(f"train/{name}", value, prog_bar=True, batch_size=B)
        if logs_now(self._trainer):  # what only the logger reads: on the steps it writes (each self.log costs ~1 ms)
            for name, term in terms.items():
                self.log(f"train/loss_{name}", term, batch_size=B)
            self.log("train/sequences", float((self.global_step + 1) * B * max(1, self.trainer.world_size)), batch_size=B)
            self._log_stats(out, "train", B)
        return loss

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._check_batch(batch)
        out = self(batch["input"])
        logits = out.logits
        B = logits.shape[0]
        self._log_stats(out, "val", B)
        self.log("val/loss", self._loss(logits, batch), prog_bar=True, batch_size=B, sync_dist=True)
        for name, metric in self.val_metrics.items():
            metric(logits, batch["target"], batch["mask"])
            self.log(f"val/{name}", metric, prog_bar=name == "bits_per_seq", batch_size=B)
        if "reference_bits" in batch:
            self.log("val/reference_bits_per_seq", batch["reference_bits"].mean(), batch_size=B, sync_dist=True)
        if self.objective.categorical and carries_questions(batch):
            update_task_errors(self.task_errors["val"], logits, batch)

    def on_validation_epoch_end(self) -> None:
        log_task_errors(self, "val", self.task_errors["val"])  # logs nothing unless the batches carried questions

    def setup(self, stage: str) -> None:
        self._bind_from_task()
        self._follow_task_loss()
        if stage == "test":
            names = getattr(getattr(self.trainer, "datamodule", None), "test_set_names", None)
            self.test_set_names = list(names) if names else ["test"]
            self.test_stat_names = []
            self.test_metrics = nn.ModuleDict(
                {n: nn.ModuleDict(self.objective.metrics()) for n in self.test_set_names}
            ).to(self.device)

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._check_batch(batch)
        out = self(batch["input"])
        logits = out.logits
        B = logits.shape[0]
        name = self.test_set_names[dataloader_idx] if dataloader_idx < len(self.test_set_names) else f"set{dataloader_idx}"
        self._log_stats(out, "test", B, test_set=name)
        if name not in self.test_metrics:
            self.test_metrics[name] = nn.ModuleDict(self.objective.metrics()).to(self.device)
        for metric_name, metric in self.test_metrics[name].items():  # one unnamed test set: test/seq_accuracy ...
            metric(logits, batch["target"], batch["mask"])
            self.log(test_metric_key(name, metric_name), metric, batch_size=B, add_dataloader_idx=False)
        if "reference_bits" in batch:
            self.log(
                test_metric_key(name, "reference_bits_per_seq"), batch["reference_bits"].mean(),
                batch_size=B, add_dataloader_idx=False, sync_dist=True,
            )
        if self.objective.categorical and carries_questions(batch):
            update_task_errors(self.task_errors["test"], logits, batch)

    def on_test_epoch_end(self) -> None:
        """Per-task errors of question streams: logged as ``test/mean_error`` ..., and the ``qa_results`` table."""
        self.results_paths = write_task_results(self, log_task_errors(self, "test", self.task_errors["test"]))

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        """What fits the loss: for ``bce`` ``probabilities [B, T, O]``, ``prediction [B, T, O]`` (0/1) and
        ``bit_errors [B]``; for ``ce`` ``probabilities [B, T, C]``, ``prediction [B, T]`` (class ids) and
        ``step_errors [B]``; for ``mse`` ``prediction [B, T, O]`` and ``squared_error [B]``."""
        self._check_batch(batch)
        logits = self(batch["input"]).logits
        return self.objective.predict(logits, batch["target"], batch["mask"])

    # -- optimisation -------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        return build_optimization(self.parameters(), self.optimizer_config, self.scheduler_config)

