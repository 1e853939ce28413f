"""Regularisers (access sparsity, temporal consistency, controller dropout) and auxiliary losses.

Sizes are distinct so a swapped axis breaks a test: bits W = 5 (I = 6, O = 5), controller H = 7,
memory N = 11 slots of W = 3.
"""

import math
import re

import lightning as L
import pytest
import torch
import yaml

from mannkit.cell import MemoryCell
from mannkit.core.errors import ConfigError, ShapeError
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.systems import SequenceSystem
from mannkit.systems.regularisers import access_consistency, access_sparsity, weighting_entropy
from mannkit.tasks import AssociativeRecallTask, CopyTask, MultiTask

BITS, I, O, N = 5, 6, 5, 11


def _cell(**kwargs) -> MemoryCell:
    # a learned (distinct-slot) memory: a constant one gives uniform content weightings, whose entropy is
    # at its maximum (zero gradient) and which never move
    return MemoryCell(
        LSTMController(7), MatrixMemory(N, 3, init="learned"), [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())], **kwargs
    )


def _task(**overrides) -> CopyTask:
    settings = dict(bits=BITS, min_length=2, max_length=3, test_lengths=[3], batch_size=3, train_batches=4, val_batches=1, test_batches=1)
    return CopyTask(**{**settings, **overrides})


def _one_hot(slots: list[int]) -> torch.Tensor:
    """One head's one-hot weightings over N slots, one per step: ``[1, T, 1, N]``."""
    return torch.nn.functional.one_hot(torch.tensor(slots), N).float().view(1, len(slots), 1, N)


# -- the penalties, by hand ------------------------------------------------------------------
def test_entropy_of_one_hot_uniform_and_mixed_weightings():
    assert weighting_entropy(_one_hot([0, 4, 10])).tolist() == [[[0.0], [0.0], [0.0]]]
    assert weighting_entropy(torch.full((N,), 1 / N)).item() == pytest.approx(math.log(N))
    # -(1/2 ln 1/2 + 2 * 1/4 ln 1/4) = 1/2 ln 2 + ln 2
    assert weighting_entropy(torch.tensor([0.5, 0.25, 0.25, 0.0])).item() == pytest.approx(1.5 * math.log(2))


def test_sparsity_averages_over_every_weighting_of_every_entry():
    reads = _one_hot([1, 2])  # entropy 0 at both steps
    writes = torch.full((1, 2, 1, N), 1 / N)  # log N at both steps
    assert access_sparsity({"read_weights": reads, "write_weights": writes, "memory": torch.rand(1, 2, N, 3)}).item() == (
        pytest.approx(math.log(N) / 2)
    )


def test_consistency_of_a_constant_and_of_a_moving_weighting():
    constant = torch.softmax(torch.randn(2, 1, 3, N), dim=-1).expand(2, 5, 3, N)  # the same weighting at all 5 steps
    assert access_consistency({"read_weights": constant}).item() == 0.0
    # steps 0 -> 0 -> 4: changes 0 and |e0 - e4|_1 = 2, mean 1
    assert access_consistency({"write_weights": _one_hot([0, 0, 4])}).item() == pytest.approx(1.0)
    assert access_consistency({"write_weights": _one_hot([3])}).item() == 0.0  # one step: no change to measure


def test_penalties_have_finite_gradients_at_one_hot_weightings():
    w = _one_hot([0, 5]).requires_grad_()
    (access_sparsity({"read_weights": w}) + access_consistency({"read_weights": w})).backward()
    assert torch.isfinite(w.grad).all()


def test_a_weighting_of_the_wrong_rank():
    with pytest.raises(ShapeError, match=r"trace entry 'read_weights' has shape \[2, 11\] but \[B, T, h, N\] was expected"):
        access_sparsity({"read_weights": torch.rand(2, N)})


# -- the system ------------------------------------------------------------------------------
def _grads(model: SequenceSystem, batch: dict) -> tuple[dict, dict]:
    model.zero_grad()
    terms, _ = model.training_terms(batch)
    torch.stack(list(terms.values())).sum().backward()
    return terms, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("option, term, penalty", [("sparsity_weight", "sparsity", access_sparsity),
                                                   ("consistency_weight", "consistency", access_consistency)])
def test_a_penalty_weight_adds_its_term_and_changes_the_gradients(option, term, penalty):
    torch.manual_seed(0)
    plain = SequenceSystem(_cell(), input_size=I, output_size=O)
    weighted = SequenceSystem(_cell(), input_size=I, output_size=O, **{option: 0.3})
    weighted.load_state_dict(plain.state_dict())
    batch = _task().example_batch(3)
    plain_terms, plain_grads = _grads(plain, batch)
    terms, grads = _grads(weighted, batch)
    assert set(plain_terms) == {"main"} and set(terms) == {"main", term}
    torch.testing.assert_close(terms["main"], plain_terms["main"])
    trace = weighted(batch["input"], record=True).trace
    torch.testing.assert_close(terms[term], 0.3 * penalty(trace))
    assert terms[term].item() > 0
    assert not torch.allclose(grads["core.project.weight"], plain_grads["core.project.weight"])


def test_negative_penalty_weight():
    with pytest.raises(ConfigError, match=r"^model\.sparsity_weight must be 0 or more, got -0\.1; use 0 to turn the penalty off\.$"):
        SequenceSystem(_cell(), sparsity_weight=-0.1)


def test_controller_dropout_acts_in_training_only():
    torch.manual_seed(0)
    plain, dropped = _cell(), _cell(dropout=0.5)
    for cell in (plain, dropped):
        cell.bind(I, O)
    dropped.load_state_dict(plain.state_dict())
    x = torch.rand(2, 4, I)
    torch.testing.assert_close(dropped.eval()(x).logits, plain.eval()(x).logits)
    dropped.train()
    assert not torch.allclose(dropped(x).logits, plain(x).logits)
    assert dropped.to_config()["init_args"]["dropout"] == 0.5
    with pytest.raises(ConfigError, match=r"^MemoryCell: dropout must be in \[0, 1\), got 1\.0; use e\.g\. 0\.1, or 0 for none\.$"):
        _cell(dropout=1.0)


# -- auxiliary tasks -------------------------------------------------------------------------
def _multi(weight: float = 0.5) -> MultiTask:
    main = AssociativeRecallTask(bits=BITS, item_length=1, min_items=2, max_items=3, test_items=[3], batch_size=3,
                                 train_batches=4, val_batches=1, test_batches=1)
    return MultiTask(main, [_task()], [weight])


def test_multitask_pads_inputs_and_marks_the_task():
    multi = _multi()
    # I = max(associative recall W + 2 = 7, copy W + 1 = 6) + 2 task channels
    assert (multi.input_size, multi.output_size, multi.names) == (9, O, ["copy"])
    batch = next(iter(multi.train_dataloader()))
    aux = batch["aux"]["copy"]
    assert batch["input"].shape[-1] == aux["input"].shape[-1] == 9
    assert (batch["input"][..., 7] == 1).all() and (batch["input"][..., 8] == 0).all()  # main task: channel 7
    assert (aux["input"][..., 6:8] == 0).all() and (aux["input"][..., 8] == 1).all()  # copy: its 6 channels, then channel 8
    assert aux["weight"].item() == 0.5
    multi.setup("fit")
    val = next(iter(multi.val_dataloader()))
    assert "aux" not in val and val["input"].shape[-1] == 9


def test_multitask_with_different_output_widths():
    message = ("MultiTask: every task must have the same output width but they have AssociativeRecallTask 5, CopyTask 4; "
               "set each task's bits so that their output widths agree.")
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        MultiTask(AssociativeRecallTask(bits=BITS), [CopyTask(bits=4)], [1.0])
    with pytest.raises(ConfigError, match=r"^MultiTask: weights \(\[1\.0, 2\.0\]\) must have one entry per auxiliary task \(1\)"):
        MultiTask(AssociativeRecallTask(bits=BITS), [_task()], [1.0, 2.0])


def test_auxiliary_loss_is_weighted_and_changes_the_gradients():
    torch.manual_seed(0)
    multi = _multi(weight=0.25)
    model = SequenceSystem(_cell(), input_size=multi.input_size, output_size=multi.output_size)
    batch = next(iter(multi.train_dataloader()))
    main_only = {k: v for k, v in batch.items() if k != "aux"}
    terms, grads = _grads(model, batch)
    main_terms, main_grads = _grads(model, main_only)
    aux = batch["aux"]["copy"]
    torch.testing.assert_close(terms["aux_copy"], 0.25 * model._loss(model(aux["input"]).logits, aux))
    torch.testing.assert_close(terms["main"], main_terms["main"])
    assert not torch.allclose(grads["core.project.weight"], main_grads["core.project.weight"])


def test_every_term_is_logged_and_they_sum_to_the_loss():
    torch.manual_seed(0)
    model = SequenceSystem(_cell(dropout=0.1), sparsity_weight=0.01, consistency_weight=0.02)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, max_steps=2)
    trainer.fit(model, datamodule=_multi())
    logged = trainer.callback_metrics
    names = ["train/loss_main", "train/loss_sparsity", "train/loss_consistency", "train/loss_aux_copy"]
    assert set(names) <= set(logged)
    assert sum(logged[n].item() for n in names) == pytest.approx(logged["train/loss"].item(), rel=1e-5)


def test_regularisers_and_an_auxiliary_task_from_yaml(tmp_path):
    """The CLI builds the whole set-up from YAML; TensorBoard gets one series per loss term."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mannkit.cli import main

    head = lambda kind: {"class_path": kind, "init_args": {"addressing": {"class_path": "NTMAddressing"}}}  # noqa: E731
    task = lambda kind, **args: {"class_path": kind, "init_args": {"bits": 3, "batch_size": 2, "train_batches": 4,  # noqa: E731
                                                                  "val_batches": 1, "test_batches": 1, **args}}
    config = {
        "seed_everything": 3,
        "trainer": {"max_steps": 2, "log_every_n_steps": 1, "enable_progress_bar": False, "enable_model_summary": False},
        "model": {"class_path": "SequenceSystem", "init_args": {
            "sparsity_weight": 0.01, "consistency_weight": 0.02,
            "core": {"class_path": "MemoryCell", "init_args": {
                "controller": {"class_path": "LSTMController", "init_args": {"hidden_size": 8}},
                "memory": {"class_path": "MatrixMemory", "init_args": {"slots": 6, "word_size": 4}},
                "heads": [head("WriteHead"), head("ReadHead")], "dropout": 0.1}}}},
        "data": {"class_path": "MultiTask", "init_args": {
            "main": task("AssociativeRecallTask", item_length=1, max_items=3, test_items=[3]),
            "auxiliary": [task("CopyTask", max_length=3, test_lengths=[3])], "weights": [0.5]}},
    }
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(path), "--trainer.default_root_dir", str(tmp_path)])
    ckpt = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)
    assert ckpt["hyper_parameters"]["input_size"] == 3 + 2 + 2  # associative recall W + 2, then 2 task channels
    assert set(ckpt["MultiTask"]) == {"main", "aux/copy"}
    events = EventAccumulator(str(next(tmp_path.rglob("events.out.tfevents.*")).parent), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss_main", "train/loss_sparsity", "train/loss_consistency", "train/loss_aux_copy"} <= tags
