"""MetaSystem: model-agnostic meta-learning (MAML, Finn et al. 2017) over any model, functionally.

Shape letters: E tasks in a meta-batch, S support examples, Q query examples of one task, then
each model's own axes (``[S, I]`` for a plain net, ``[S, T, I]`` for a sequence model such as a
:class:`~mannkit.cell.MemoryCell`: that is "MAML with memory"), O outputs, C classes.

One meta-step over the tasks tau of a meta-batch (section 8 of the design notes)::

    theta'_tau = theta - alpha * grad_theta L_tau^support(f_theta)          (inner step, k times)
    theta     <- theta - beta  * grad_theta 1/E sum_tau L_tau^query(f_theta'_tau)   (outer step, the optimizer)

The inner loop never copies the model: the parameters are a dict of tensors, the model runs with
:func:`torch.func.functional_call`, and each inner step is ``p - alpha * g`` with ``g`` from
:func:`torch.autograd.grad`. Second order keeps the inner gradients' graph (``create_graph``), so the
outer backward differentiates through them; first order (FOMAML) detaches them, so the outer gradient
is the query gradient at ``theta'``. ``learn_inner_lr`` makes alpha a learned tensor per parameter
(Meta-SGD, Li et al. 2017), trained by the outer optimizer.

Validation and testing adapt with their own number of steps (``eval_inner_steps``) under
``torch.enable_grad`` and without a second-order graph, and log the query loss (and accuracy for
``ce``) after 0, 1, ..., k inner steps as ``val/query_loss_step<k>`` (:class:`QueryCurve`, a torchmetrics
``Metric``). The meta-loss is the mean over tasks.

A batch is a dict of ``support_x [E, S, ...]``, ``support_y``, ``query_x [E, Q, ...]``, ``query_y`` (see
:mod:`mannkit.tasks.episodic`); targets are ``[..., O]`` floats for ``mse`` or ``[...]`` int64 ids for ``ce``.

>>> import torch
>>> from mannkit.systems.meta_models import FewShotMLP
>>> system = MetaSystem(FewShotMLP([8]), inner_steps=2, inner_lr=0.1, input_size=1, output_size=1, loss="mse")
>>> batch = {k: torch.zeros(3, 5, 1) for k in ("support_x", "support_y", "query_x", "query_y")}
>>> system.meta_loss(batch).shape
torch.Size([])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torchmetrics import Metric

from mannkit.callbacks.checkpoint_io import CheckedLoading
from mannkit.callbacks.guard import stop_if_not_finite
from mannkit.core.config import instantiate, to_config
from mannkit.core.errors import ConfigError
from mannkit.core.registry import register
from mannkit.systems.optim import DEFAULT_OPTIMIZER, build_optimization, torch_class

__all__ = ["MetaSystem", "QueryCurve", "task_loss", "task_accuracy"]

Params = dict[str, Tensor]
_LOSSES = ("mse", "ce")


def task_loss(output: Tensor, target: Tensor, loss: str) -> Tensor:
    """The loss of one task's predictions, averaged over every scored value.

    Args:
        output: ``[S, ..., O]`` predictions (``mse``) or logits over C classes (``ce``).
        target: ``[S, ..., O]`` floats (``mse``) or ``[S, ...]`` int64 class ids (``ce``).
        loss: ``"mse"`` or ``"ce"``.
    """
    if loss == "mse":
        return F.mse_loss(output, target)
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))  # [S*..., C] vs [S*...]


def task_accuracy(output: Tensor, target: Tensor) -> Tensor:
    """Fraction of ``argmax(output [S, ..., C])`` equal to ``target [S, ...]``."""
    return (output.argmax(-1) == target).to(output.dtype).mean()


class QueryCurve(Metric):
    """Mean of a per-task curve ``[k + 1]`` (query loss or accuracy after 0..k inner steps) over tasks.

    >>> curve = QueryCurve(2)
    >>> curve.update(torch.tensor([[3.0, 2.0, 1.0], [1.0, 0.0, 1.0]]))
    >>> curve.compute()
    tensor([2., 1., 1.])
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.add_state("total", torch.zeros(steps + 1, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, curves: Tensor) -> None:
        """``curves [E, k + 1]``: one curve per task."""
        self.total += curves.detach().to(torch.float64).sum(0)
        self.count += curves.shape[0]

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()


def _check(name: str, value: Any, at_least: float, fix: str, integer: bool = False) -> None:
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int))
    if bad or not value >= at_least:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"model.{name} must be {kind} of at least {at_least:g}, got {value!r}; {fix}.")


@register
class MetaSystem(CheckedLoading, pl.LightningModule):
    """MAML (second or first order, optionally Meta-SGD) around any model, sizes taken from the task.

    Args:
        model: the network adapted per task: a plain net (``FewShotMLP``, ``FewShotConvNet``) mapping
            ``[S, I]`` to ``[S, O]``, or a sequence model (``MemoryCell``) mapping ``[S, T, I]`` to logits
            ``[S, T, O]``. It is bound to the task's ``input_size``/``output_size`` at setup if it has ``bind``.
        inner_steps: k, inner gradient steps per task in training (1 or more).
        inner_lr: alpha, the inner learning rate (0 or more); with ``learn_inner_lr`` the initial value.
        first_order: FOMAML: do not differentiate through the inner gradients (cheaper, no second order).
        learn_inner_lr: Meta-SGD: alpha is a learned tensor per parameter, shaped like it.
        eval_inner_steps: inner steps in validation and testing (null: ``inner_steps``).
        vectorise: in training, run the tasks of a meta-batch at once under :func:`torch.func.vmap` (inner
            gradients by :func:`torch.func.grad`) instead of one after another; for models vmap can run
            (no in-place updates, no data-dependent branches, batch norm without running statistics).
        loss: ``mse`` or ``ce``; null follows the task's ``loss`` at setup.
        input_size: I; null takes it from the task at setup.
        output_size: O (C classes for ``ce``); null takes it from the task at setup.
        optimizer: ``{class_path, init_args}`` of the outer ``torch.optim`` optimizer (Adam 1e-3 by default).
        lr_scheduler: optional ``{class_path, init_args}`` of a ``torch.optim.lr_scheduler``.
    """

    def __init__(
        self,
        model: nn.Module,
        inner_steps: int = 1,
        inner_lr: float = 0.01,
        first_order: bool = False,
        learn_inner_lr: bool = False,
        eval_inner_steps: int | None = None,
        vectorise: bool = False,
        loss: str | None = None,
        input_size: int | None = None,
        output_size: int | None = None,
        optimizer: dict | None = None,
        lr_scheduler: dict | None = None,
    ) -> None:
        super().__init__()
        if isinstance(model, Mapping):  # rebuilt from a checkpoint's hyper-parameters
            model = instantiate(model, "model.model")
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model.model must be a torch module such as FewShotMLP, got {type(model).__name__}; give its class_path.")
        _check("inner_steps", inner_steps, 1, "use 1 or more inner gradient steps", integer=True)
        if eval_inner_steps is not None:
            _check("eval_inner_steps", eval_inner_steps, 1, "use 1 or more, or null to use inner_steps", integer=True)
        _check("inner_lr", inner_lr, 0.0, "a learning rate cannot be negative, use e.g. 0.01")
        if loss is not None and loss not in _LOSSES:
            raise ConfigError(f"model.loss is {loss!r}, not a loss MetaSystem knows; use one of {list(_LOSSES)} or null to follow the task.")
        optimizer = dict(optimizer or DEFAULT_OPTIMIZER)
        torch_class(str(optimizer.get("class_path", "")), torch.optim, "model.optimizer.class_path")
        outer_lr = (optimizer.get("init_args") or {}).get("lr", 0.0)
        _check("optimizer.init_args.lr", outer_lr, 0.0, "a learning rate cannot be negative, use e.g. 0.001")
        if lr_scheduler is not None:
            torch_class(str(lr_scheduler.get("class_path", "")), torch.optim.lr_scheduler, "model.lr_scheduler.class_path")
        self.model = model
        self.inner_steps, self.inner_lr = inner_steps, float(inner_lr)
        self.first_order, self.learn_inner_lr = bool(first_order), bool(learn_inner_lr)
        self.eval_inner_steps = eval_inner_steps or inner_steps
        self.vectorise = bool(vectorise)
        self.loss_name = loss or "mse"
        self.loss_setting = loss
        self.input_size, self.output_size = input_size, output_size
        self.optimizer_config, self.scheduler_config = optimizer, lr_scheduler
        self.inner_lrs = nn.ParameterList()  # Meta-SGD's alpha, one tensor per adapted parameter
        self._lr_names: list[str] = []
        self.save_hyperparameters({
            "_class_path": f"{type(self).__module__}.{type(self).__qualname__}",
            "model": to_config(model), "inner_steps": inner_steps, "inner_lr": inner_lr, "first_order": first_order,
            "learn_inner_lr": learn_inner_lr, "eval_inner_steps": eval_inner_steps, "vectorise": vectorise, "loss": loss,
            "input_size": input_size, "output_size": output_size, "optimizer": optimizer, "lr_scheduler": lr_scheduler,
        })
        self.curves = nn.ModuleDict()
        self._make_curves()
        if input_size is not None or output_size is not None:
            self._bind(input_size, output_size)

    # -- assembly ------------------------------------------------------------------------
    def _make_curves(self) -> None:
        k = self.eval_inner_steps
        self.curves = nn.ModuleDict({"query_loss": QueryCurve(k)})
        if self.loss_name == "ce":
            self.curves["query_accuracy"] = QueryCurve(k)

    def _bind(self, input_size: int | None, output_size: int | None) -> None:
        for name, value in (("input_size", input_size), ("output_size", output_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.{name} is {value!r} but must be a positive integer; leave both null to take them from the task, or give both.")
        if hasattr(self.model, "bind"):
            self.model.bind(input_size, output_size)
        self.input_size, self.output_size = input_size, output_size
        self.hparams["input_size"], self.hparams["output_size"] = input_size, output_size
        if self.learn_inner_lr and len(self.inner_lrs) == 0:
            self.inner_lrs.extend(nn.Parameter(torch.full_like(p, self.inner_lr)) for _, p in self._adapted())
            self._lr_names = [n for n, _ in self._adapted()]  # which parameter each rate belongs to

    def setup(self, stage: str) -> None:
        data = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if data is not None and hasattr(data, "input_size"):
            if self.input_size is None:
                self._bind(int(data.input_size), int(data.output_size))
            elif (self.input_size, self.output_size) != (data.input_size, data.output_size):
                raise ConfigError(
                    f"the model was built for {self.input_size} inputs and {self.output_size} outputs but the task "
                    f"{type(data).__name__} gives {data.input_size} and {data.output_size}; use the task settings the model was trained with.")
        elif self.input_size is None:
            raise ConfigError("model.input_size is not set and there is no task to take it from; pass an episodic task or set both sizes.")
        declared = getattr(data, "loss", None)
        if declared is not None:
            if self.loss_setting is not None and self.loss_setting != declared:
                raise ConfigError(f"model.loss is {self.loss_setting!r} but the task {type(data).__name__} declares {declared!r}; "
                                  f"set model.loss to null to follow the task, or to {declared!r}.")
            if declared != self.loss_name:
                self.loss_name = str(declared)
                self._make_curves()
            self.hparams["loss"] = declared

    def _adapted(self) -> list[tuple[str, nn.Parameter]]:
        """The model's parameters that the inner loop adapts (all that require a gradient), in a fixed order."""
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    # -- the inner loop ------------------------------------------------------------------
    def predict(self, params: Params, x: Tensor) -> Tensor:
        """``f_params(x)``: the model run with ``params`` instead of its own (``x [S, ...]`` -> ``[S, ..., O]``)."""
        buffers = dict(self.model.named_buffers())
        out = functional_call(self.model, {**buffers, **params}, (x,))
        return out.logits if hasattr(out, "logits") else out

    def adapt(self, support_x: Tensor, support_y: Tensor, steps: int, train: bool, theta: Params | None = None) -> list[Params]:
        """theta'_k for k = 0..steps: ``theta_{k+1} = theta_k - alpha * grad L^support(f_theta_k)``.

        In training the first parameters are the model's own, so the outer backward reaches them (through
        the inner gradients too unless ``first_order``); in evaluation each step starts from detached copies
        and builds no second-order graph. ``theta`` replaces the model's own parameters (a functional call).
        """
        theta = dict(self._adapted()) if theta is None else theta
        params = {n: (p if train else p.detach().requires_grad_()) for n, p in theta.items()}
        rates = dict(zip(self._lr_names, self.inner_lrs)) if self.learn_inner_lr else {}
        alphas = [rates.get(n, self.inner_lr) for n in params]
        path = [params]
        create_graph = train and not self.first_order
        for _ in range(steps):
            with torch.enable_grad():
                loss = task_loss(self.predict(params, support_x), support_y, self.loss_name)
                grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph, allow_unused=True)
            new: Params = {}
            for (n, p), g, alpha in zip(params.items(), grads, alphas):
                if g is None:  # this parameter does not affect the support loss
                    new[n] = p
                    continue
                new[n] = p - alpha * g  # theta' = theta - alpha * grad L (Meta-SGD: alpha elementwise)
                if not train:
                    new[n] = new[n].detach().requires_grad_()
            params = new
            path.append(params)
        return path

    def meta_loss(self, batch: Mapping[str, Tensor], theta: Params | None = None) -> Tensor:
        """The outer loss ``1/E sum_tau L_tau^query(f_theta'_tau)`` after ``inner_steps`` adaptation steps
        (from ``theta``, ``{name: tensor}``, instead of the model's parameters when given)."""
        if self.vectorise:
            return self._vectorised_meta_loss(batch, dict(self._adapted()) if theta is None else theta)
        losses = []
        for e in range(batch["support_x"].shape[0]):  # tasks of the meta-batch
            final = self.adapt(batch["support_x"][e], batch["support_y"][e], self.inner_steps, True, theta)[-1]
            losses.append(task_loss(self.predict(final, batch["query_x"][e]), batch["query_y"][e], self.loss_name))
        return torch.stack(losses).mean()

    def _vectorised_meta_loss(self, batch: Mapping[str, Tensor], theta: Params) -> Tensor:
        """:meth:`meta_loss` with the E tasks under one ``vmap`` (the same numbers, one batched graph)."""
        rates = dict(zip(self._lr_names, self.inner_lrs)) if self.learn_inner_lr else {}

        def support_loss(params: Params, x: Tensor, y: Tensor) -> Tensor:
            return task_loss(self.predict(params, x), y, self.loss_name)

        def query_loss(params: Params, sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> Tensor:
            for _ in range(self.inner_steps):
                grads = torch.func.grad(support_loss)(params, sx, sy)  # dL^support/dtheta, one task
                if self.first_order:
                    grads = {n: g.detach() for n, g in grads.items()}
                params = {n: p - rates.get(n, self.inner_lr) * grads[n] for n, p in params.items()}
            return support_loss(params, qx, qy)

        keys = ("support_x", "support_y", "query_x", "query_y")
        try:
            losses = torch.func.vmap(query_loss, in_dims=(None, 0, 0, 0, 0))(theta, *(batch[k] for k in keys))  # [E]
        except (RuntimeError, NotImplementedError) as exc:  # e.g. a MemoryCell's in-place or custom-autograd steps
            reason = str(exc).strip().splitlines()[0][:160]
            raise ConfigError(f"model.vectorise is true but vmap cannot run {type(self.model).__name__} ({reason}); "
                              "set model.vectorise to false to adapt the tasks one after another.") from None
        return losses.mean()

    def query_curves(self, batch: Mapping[str, Tensor], steps: int) -> dict[str, Tensor]:
        """Per task, the query loss (and accuracy for ``ce``) after 0..steps inner steps: ``{name: [E, steps + 1]}``."""
        curves: dict[str, list[Tensor]] = {name: [] for name in self.curves}
        for e in range(batch["support_x"].shape[0]):
            path = self.adapt(batch["support_x"][e], batch["support_y"][e], steps, train=False)
            with torch.no_grad():
                outputs = [self.predict(p, batch["query_x"][e]) for p in path]
                curves["query_loss"].append(torch.stack([task_loss(o, batch["query_y"][e], self.loss_name) for o in outputs]))
                if "query_accuracy" in curves:
                    curves["query_accuracy"].append(torch.stack([task_accuracy(o, batch["query_y"][e]) for o in outputs]))
        return {name: torch.stack(values) for name, values in curves.items()}

    # -- steps ---------------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.meta_loss(batch)
        stop_if_not_finite(self, loss)  # the NaN stop (mannkit.callbacks.guard)
        E = batch["support_x"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=E)
        self.log("train/tasks", float((self.global_step + 1) * E), batch_size=E)
        return loss

    def _evaluate(self, batch: Mapping[str, Tensor]) -> None:
        # Lightning evaluates under no_grad or inference_mode; adaptation needs gradients, so both are lifted
        # and the batch is cloned out of inference mode (inference tensors cannot be saved for backward).
        with torch.inference_mode(False), torch.enable_grad():
            batch = {k: v.clone() for k, v in batch.items()}
            curves = self.query_curves(batch, self.eval_inner_steps)
        for name, values in curves.items():  # metric states live in the loop's own mode
            self.curves[name].update(values)

    def _log_curves(self, prefix: str) -> None:
        for name, metric in self.curves.items():
            values = metric.compute()
            for k, value in enumerate(values):
                self.log(f"{prefix}/{name}_step{k}", value)
            self.log(f"{prefix}/{'loss' if name == 'query_loss' else 'accuracy'}", values[-1], prog_bar=True)
            metric.reset()

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_curves("val")

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch)

    def on_test_epoch_end(self) -> None:
        self._log_curves("test")

    def configure_optimizers(self) -> Any:
        return build_optimization(self.parameters(), self.optimizer_config, self.scheduler_config)
