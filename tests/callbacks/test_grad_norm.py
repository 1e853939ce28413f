"""GradNormMonitor: the logged total norm is Lightning's grad_norm of the gradients before clipping."""

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from mannkit.callbacks import GradNormMonitor
from mannkit.core.errors import ConfigError


class Tiny(L.LightningModule):
    """A 3 -> 2 linear map; records the gradient norm it sees before each optimizer step (before clipping)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.layer = nn.Linear(3, 2)
        self.seen: list[float] = []

    def training_step(self, batch, batch_idx):
        return (self.layer(batch) ** 2).sum() * 50.0  # large gradients, so the clip below changes them

    def on_before_optimizer_step(self, optimizer) -> None:
        self.seen.append(float(torch.cat([p.grad.flatten() for p in self.parameters()]).norm()))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(tmp_path, callback, logger=True, steps=3, log_every=1) -> Tiny:
    model = Tiny()
    trainer = L.Trainer(
        accelerator="cpu", max_steps=steps, log_every_n_steps=log_every, gradient_clip_val=1e-3, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=[callback],
        logger=CSVLogger(tmp_path) if logger else False, default_root_dir=str(tmp_path),
    )
    data = torch.utils.data.DataLoader(torch.arange(3.0 * steps).view(steps, 3) / 7, batch_size=1)
    trainer.fit(model, data)
    model.logged = trainer.callback_metrics  # type: ignore[attr-defined]
    return model


@pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")
@pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\).*:FutureWarning")
def test_logs_the_total_norm_before_clipping(tmp_path):
    model = _fit(tmp_path, GradNormMonitor(per_parameter=True))
    assert len(model.seen) == 3 and model.seen[-1] > 1e-3  # the clip to 1e-3 happens after the callback
    assert float(model.logged["train/grad_norm"]) == pytest.approx(model.seen[-1], rel=1e-5)
    assert {"train/grad_norm/layer.weight", "train/grad_norm/layer.bias"} <= set(model.logged)


@pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")
@pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\).*:FutureWarning")
def test_nothing_without_a_logger(tmp_path):
    model = _fit(tmp_path, GradNormMonitor(), logger=False)
    assert "train/grad_norm" not in model.logged


@pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")
@pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\).*:FutureWarning")
def test_computed_only_on_the_steps_the_logger_writes(tmp_path, monkeypatch):
    import mannkit.callbacks.grad_norm as module

    computed = []
    monkeypatch.setattr(module, "grad_norm", lambda *a, **k: computed.append(1) or L.pytorch.utilities.grad_norm(*a, **k))
    model = _fit(tmp_path, GradNormMonitor(), steps=7, log_every=3)
    assert len(model.seen) == 7 and len(computed) == 2  # steps 3 and 6 of 7
    rows = (next(tmp_path.rglob("metrics.csv"))).read_text().splitlines()
    header = rows[0].split(",")
    logged = [(int(r.split(",")[header.index("step")]), float(r.split(",")[header.index("train/grad_norm")])) for r in rows[1:]
              if r.split(",")[header.index("train/grad_norm")]]
    assert [s for s, _ in logged] == [2, 5]
    assert [v for _, v in logged] == pytest.approx([model.seen[2], model.seen[5]], rel=1e-5)


@pytest.mark.parametrize("norm_type", [0, -2.0, "two", math.nan])
def test_bad_norm_type(norm_type):
    with pytest.raises(ConfigError, match=r"^GradNormMonitor: norm_type must be a positive number or 'inf', got .*; use 2\.0\.$"):
        GradNormMonitor(norm_type=norm_type)


def test_inf_norm_is_accepted():
    assert GradNormMonitor(norm_type="inf").norm_type == math.inf
