"""ClipEachGradient: each parameter's gradient is clipped on its own (the original MemN2N code's rule)."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch

from mannkit.callbacks import ClipEachGradient
from mannkit.callbacks.clip_each import gradient_norm
from mannkit.core.errors import ConfigError


def test_spectral_norm_is_the_largest_singular_value_hand_computed():
    # [[1, 1], [1, 1]] has singular values 2 and 0; its Frobenius norm is 2 too, [[3, 0], [0, 4]] tells them apart
    assert float(gradient_norm(torch.ones(2, 2), "spectral")) == pytest.approx(2.0)
    assert float(gradient_norm(torch.tensor([[3.0, 0.0], [0.0, 4.0]]), "spectral")) == pytest.approx(4.0)
    assert float(gradient_norm(torch.tensor([[3.0, 0.0], [0.0, 4.0]]), "frobenius")) == pytest.approx(5.0)
    assert float(gradient_norm(torch.tensor([3.0, 4.0]), "spectral")) == pytest.approx(5.0), "a vector: its 2-norm"
    cube = torch.arange(8.0).reshape(2, 2, 2)
    assert float(gradient_norm(cube, "spectral")) == pytest.approx(float(torch.linalg.matrix_norm(cube.reshape(2, 4), ord=2)))


def test_each_parameter_is_clipped_alone_not_together():
    a, b = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2, 2))
    a.grad = torch.tensor([[30.0, 0.0], [0.0, 40.0]])  # spectral norm 40 > 10
    b.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # spectral norm 4: kept, though the joint norm is above 10
    assert ClipEachGradient(max_norm=10.0).clip([a, b]) == 1
    torch.testing.assert_close(a.grad, torch.tensor([[7.5, 0.0], [0.0, 10.0]]))  # direction kept, largest singular value 10
    torch.testing.assert_close(b.grad, torch.tensor([[3.0, 0.0], [0.0, 4.0]]))


def test_a_gradient_under_the_bound_or_not_finite_is_left_alone():
    a, b, c = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    a.grad, b.grad = torch.tensor([math.nan, 1e6]), torch.tensor([0.6, 0.8])
    assert ClipEachGradient(max_norm=1.0, norm="frobenius").clip([a, b, c]) == 0  # c has no gradient
    assert math.isnan(a.grad[0].item()) and a.grad[1].item() == 1e6 and b.grad.tolist() == pytest.approx([0.6, 0.8])


@pytest.mark.parametrize(("max_norm", "norm"), [(0.0, "spectral"), (-1.0, "spectral"), ("big", "spectral"), (math.inf, "spectral"),
                                                (40.0, "l1")])
def test_bad_settings_are_one_sentence(max_norm, norm):
    with pytest.raises(ConfigError, match=r"^ClipEachGradient: (max_norm|norm) must be .*; use .* as the MemN2N code\.$"):
        ClipEachGradient(max_norm=max_norm, norm=norm)


class _TwoWeights(pl.LightningModule):
    """Two weights whose gradients are 100 and 1 at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.big, self.small = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[float, float]] = []

    def training_step(self, batch, batch_idx):  # noqa: ANN001
        return 100.0 * self.big.sum() + self.small.sum()

    def on_before_optimizer_step(self, optimizer) -> None:  # noqa: ANN001  (runs after the callbacks' hook)
        self.seen.append((float(self.big.grad), float(self.small.grad)))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return torch.utils.data.DataLoader([0] * 3, batch_size=None)


def _trainer(**kw) -> pl.Trainer:
    return pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kw)


def test_in_a_trainer_the_optimizer_sees_each_gradient_clipped_on_its_own():
    model = _TwoWeights()
    _trainer(callbacks=[ClipEachGradient(max_norm=10.0)]).fit(model)
    assert model.seen == [pytest.approx((10.0, 1.0))] * 3  # a joint clip to 10 would have given (about 10, 0.1)


def test_with_the_trainers_own_clip_it_refuses_to_clip_twice():
    with pytest.raises(ConfigError, match=r"^ClipEachGradient: trainer.gradient_clip_val is 40.0, .* set trainer.gradient_clip_val to null"):
        _trainer(callbacks=[ClipEachGradient()], gradient_clip_val=40.0).fit(_TwoWeights())


def test_a_frobenius_norm_above_the_bound_with_a_spectral_norm_below_is_kept():
    p = torch.nn.Parameter(torch.zeros(2, 2))
    p.grad = torch.tensor([[30.0, 0.0], [0.0, 30.0]])  # Frobenius 42.4, largest singular value 30
    assert ClipEachGradient(max_norm=35.0).clip([p]) == 0 and p.grad.tolist() == [[30.0, 0.0], [0.0, 30.0]]
    assert ClipEachGradient(max_norm=35.0, norm="frobenius").clip([p]) == 1
    assert float(p.grad.norm()) == pytest.approx(35.0)


def test_in_a_trainer_together_clips_two_weights_of_one_module_as_one():
    model = _TwoWeights()  # gradients 100 and 1: stacked, norm sqrt(100^2 + 1) -> both scaled by the same factor
    _trainer(callbacks=[ClipEachGradient(max_norm=10.0, together=["big", "small"])]).fit(model)
    scale = 10.0 / (100.0**2 + 1.0) ** 0.5
    assert model.seen == [pytest.approx((100.0 * scale, scale))] * 3  # apart, it would have been (10, 1)


def test_together_naming_no_parameters_of_the_model_is_refused_before_training():
    model = _TwoWeights()
    with pytest.raises(ConfigError, match=r"^ClipEachGradient: together is \['words', 'time'\], but no module .* leave together out\.$"):
        _trainer(callbacks=[ClipEachGradient(max_norm=10.0, together=["words", "time"])]).fit(model)
    assert model.seen == [], "no step was taken"
