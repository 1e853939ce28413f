"""MetaSystem: the inner loop by hand, its gradients (second and first order, Meta-SGD), memory models,
the refusals, and a tiny seeded MAML sinusoid run that learns."""

import lightning as L
import pytest
import torch
from torch import nn

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.systems import FewShotConvNet, FewShotMLP, MetaSystem
from mannkit.tasks import SinusoidTask


def _linear_system(w: float, lr: float, **options) -> MetaSystem:
    """MAML over y = w x (no bias), float64."""
    net = FewShotMLP([])
    system = MetaSystem(net, inner_lr=lr, input_size=1, output_size=1, loss="mse", **options).double()
    layer = net.net[0]
    with torch.no_grad():
        layer.weight.fill_(w)
        layer.bias.zero_()
    layer.bias.requires_grad_(False)  # only w adapts, so the case stays one-dimensional
    return system


def _batch(xs, ys, xq, yq) -> dict:
    t = lambda v: torch.tensor(v, dtype=torch.float64).view(1, -1, 1)  # noqa: E731  [E=1, S, 1]
    return {"support_x": t(xs), "support_y": t(ys), "query_x": t(xq), "query_y": t(yq)}


BATCH = _batch([1.0, 2.0], [3.0, 5.0], [3.0], [4.0])


def test_one_inner_step_by_hand_second_and_first_order():
    # L_s(w) = mean((w x - y)^2) over x = (1, 2), y = (3, 5); w = 0.5, alpha = 0.1
    # dL_s/dw = mean(2 x (w x - y)) = (2 * 1 * -2.5 + 2 * 2 * -4) / 2 = -10.5  ->  w' = 0.5 + 1.05 = 1.55
    # L_q(w') = (3 w' - 4)^2 = 0.65^2 = 0.4225; dL_q/dw' = 2 * 3 * 0.65 = 3.9
    # d^2L_s/dw^2 = mean(2 x^2) = 5  ->  dw'/dw = 1 - 0.1 * 5 = 0.5; second order: 3.9 * 0.5 = 1.95; first: 3.9
    for first_order, expected in ((False, 1.95), (True, 3.9)):
        system = _linear_system(0.5, 0.1, first_order=first_order)
        loss = system.meta_loss(BATCH)
        assert loss.item() == pytest.approx(0.4225)
        loss.backward()
        assert system.model.net[0].weight.grad.item() == pytest.approx(expected)


def test_two_inner_steps_and_the_query_curve_by_hand():
    # w0 = 0.5 -> w1 = 1.55 (above); grad at w1 = mean(2 x (w1 x - y)) = (2 * -1.45 + 4 * -1.9) / 2 = -5.25 -> w2 = 2.075
    system = _linear_system(0.5, 0.1, inner_steps=2)
    curves = system.query_curves(BATCH, 2)
    expected = [(3 * w - 4) ** 2 for w in (0.5, 1.55, 2.075)]
    assert curves["query_loss"][0].tolist() == pytest.approx(expected)


def test_meta_sgd_learns_one_rate_per_element_and_uses_it():
    system = _linear_system(0.5, 0.1, learn_inner_lr=True)
    assert [tuple(p.shape) for p in system.inner_lrs] == [(1, 1), (1,)]  # shaped like the weight and the bias
    loss = system.meta_loss(BATCH)
    loss.backward()
    # dL_q/dalpha = dL_q/dw' * dw'/dalpha = 3.9 * -(-10.5) = 40.95
    assert system.inner_lrs[0].grad.item() == pytest.approx(40.95)
    assert system.model.net[0].weight.grad.item() == pytest.approx(1.95)


def test_inner_loop_gradcheck_float64_second_order():
    torch.manual_seed(0)
    system = MetaSystem(FewShotMLP([3]), inner_steps=2, inner_lr=0.3, input_size=2, output_size=1, loss="mse").double()
    batch = {k: torch.randn(2, 5, 2 if k.endswith("x") else 1, dtype=torch.float64) for k in ("support_x", "support_y", "query_x", "query_y")}
    names = [n for n, _ in system.model.named_parameters()]
    start = tuple(p.detach().clone().requires_grad_() for p in system.model.parameters())

    def meta_loss(*params):
        return system.meta_loss(batch, dict(zip(names, params)))

    assert torch.autograd.gradgradcheck(meta_loss, start)  # the outer gradient itself is differentiable
    assert torch.autograd.gradcheck(meta_loss, start)


def test_adapts_a_memory_cell_on_sinusoid_sequences():
    torch.manual_seed(1)
    task = SinusoidTask(shots=3, queries=2, sequence_length=5, meta_batch=2)
    cell = MemoryCell(LSTMController(7), MatrixMemory(5, 3), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])
    system = MetaSystem(cell, inner_steps=2, inner_lr=0.05, input_size=task.input_size, output_size=1, loss="mse")
    loss = system.meta_loss(task.val_set[0])
    loss.backward()
    for name, p in system.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_vectorise_over_a_model_vmap_cannot_run_is_one_sentence():
    task = SinusoidTask(shots=3, queries=2, sequence_length=5, meta_batch=2)
    cell = MemoryCell(LSTMController(7), MatrixMemory(5, 3), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])
    system = MetaSystem(cell, vectorise=True, input_size=task.input_size, output_size=1, loss="mse")
    with pytest.raises(ConfigError, match=r"model.vectorise is true but vmap cannot run MemoryCell \(.*\); set model.vectorise to false"):
        system.meta_loss(task.val_set[0])


def test_conv_net_adapts_on_five_way_images():
    torch.manual_seed(2)
    system = MetaSystem(FewShotConvNet(channels=4, blocks=2), inner_steps=1, inner_lr=0.4, input_size=64, output_size=5, loss="ce")
    batch = {"support_x": torch.rand(2, 5, 64), "support_y": torch.arange(5).repeat(2, 1),
             "query_x": torch.rand(2, 10, 64), "query_y": torch.arange(5).repeat(2, 2)}
    curves = system.query_curves(batch, 3)
    assert curves["query_accuracy"].shape == (2, 4) and curves["query_loss"].shape == (2, 4)
    system.meta_loss(batch).backward()
    assert all(p.grad is not None for p in system.parameters())


@pytest.mark.parametrize(
    "options, match",
    [
        ({"inner_steps": 0}, r"model.inner_steps must be an integer of at least 1, got 0; use 1 or more"),
        ({"eval_inner_steps": 0}, r"model.eval_inner_steps must be an integer of at least 1, got 0"),
        ({"inner_lr": -0.1}, r"model.inner_lr must be a number of at least 0, got -0.1; a learning rate cannot be negative"),
        ({"optimizer": {"class_path": "Adam", "init_args": {"lr": -1e-3}}},
         r"model.optimizer.init_args.lr must be a number of at least 0, got -0.001"),
        ({"loss": "bce"}, r"model.loss is 'bce', not a loss MetaSystem knows; use one of \['mse', 'ce'\]"),
        ({"model": "FewShotMLP"}, r"model.model must be a torch module such as FewShotMLP, got str"),
    ],
)
def test_bad_settings_are_one_sentence(options, match):
    kwargs = {"model": FewShotMLP(), **options}
    with pytest.raises(ConfigError, match=match):
        MetaSystem(**kwargs)


def test_task_sizes_and_loss_are_taken_at_setup_and_a_mismatch_is_refused():
    task = SinusoidTask(meta_batch=2, train_batches=1, val_batches=1)
    system = MetaSystem(FewShotMLP([4]), input_size=3, output_size=1)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ConfigError, match=r"built for 3 inputs and 1 outputs but the task SinusoidTask gives 1 and 1"):
        trainer.validate(system, datamodule=task, verbose=False)


def _fit(system: MetaSystem, task: SinusoidTask, steps: int) -> L.Trainer:
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(system, datamodule=task)
    return trainer


def _validate(system: MetaSystem, task: SinusoidTask) -> dict:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (metrics,) = trainer.validate(system, datamodule=task, verbose=False)
    return metrics


def test_tiny_seeded_maml_sinusoid_run_learns_and_evaluates_with_its_own_steps():
    """Seed 0, 150 meta-steps of 10 tasks: the query MSE after one inner step falls from about 5.3 to about 3.7
    (predicting 0 everywhere scores about 4.2), and after training adaptation helps (step 1 below step 0)."""
    L.seed_everything(0, verbose=False)
    task = SinusoidTask(shots=5, queries=10, meta_batch=10, train_batches=150, val_batches=2, seed=0)
    system = MetaSystem(FewShotMLP([40, 40]), inner_steps=1, inner_lr=0.05, eval_inner_steps=2,
                        optimizer={"class_path": "Adam", "init_args": {"lr": 0.01}})
    before = _validate(system, task)
    assert set(before) >= {"val/query_loss_step0", "val/query_loss_step1", "val/query_loss_step2", "val/loss"}
    _fit(system, task, 150)
    after = _validate(system, task)
    assert after["val/query_loss_step1"] < 0.8 * before["val/query_loss_step1"]
    assert after["val/query_loss_step1"] < 0.9 * after["val/query_loss_step0"]
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (tested,) = trainer.test(system, datamodule=task, verbose=False)  # under inference_mode, adaptation still runs
    assert tested["test/query_loss_step1"] < tested["test/query_loss_step0"]


def test_checkpoint_rebuilds_the_model_and_meta_sgd_rates(tmp_path):
    task = SinusoidTask(meta_batch=2, train_batches=2, val_batches=1)
    system = MetaSystem(FewShotMLP([4]), learn_inner_lr=True, inner_lr=0.02)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(system, datamodule=task)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = MetaSystem.load_from_checkpoint(path, weights_only=True)
    batch = task.val_set[0]
    assert torch.equal(loaded.meta_loss(batch), system.meta_loss(batch))
    assert len(loaded.inner_lrs) == len(system.inner_lrs)


@pytest.mark.parametrize("first_order, learn_inner_lr", [(False, False), (True, False), (False, True)])
def test_vectorised_tasks_give_the_task_loop_s_loss_and_gradients(first_order, learn_inner_lr):
    batch = SinusoidTask(meta_batch=4, shots=3, queries=2).val_set[0]
    systems = []
    for vectorise in (False, True):
        torch.manual_seed(3)
        system = MetaSystem(FewShotMLP([6]), inner_steps=2, inner_lr=0.05, first_order=first_order, learn_inner_lr=learn_inner_lr,
                            vectorise=vectorise, input_size=1, output_size=1, loss="mse")
        system.meta_loss(batch).backward()
        systems.append(system)
    loop, vmapped = systems
    assert torch.allclose(loop.meta_loss(batch), vmapped.meta_loss(batch))
    for (name, a), b in zip(loop.named_parameters(), vmapped.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name
