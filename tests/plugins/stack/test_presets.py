"""configs/stack/: every preset passes the config check and one training step; the pictures of a stack."""

from pathlib import Path

import pytest
import torch

import mannkit.callbacks  # noqa: F401  (check_config resolves short names; main() imports these itself)
import mannkit.systems  # noqa: F401
from mannkit.cli import check_config, main
from mannkit.nn import LSTMController
from mannkit.viz import draw_trace
from mannkit.nn import ControllerCell
from mannkit_stack import NeuralStack, NeuralStackHead, PushPopStack, PushPopStackHead

ROOT = Path(__file__).parents[3]
PRESETS = sorted((ROOT / "configs" / "stack").glob("*.yaml"))


def test_the_folder_has_a_preset_per_memory_and_task():
    names = {p.stem for p in PRESETS}
    assert names >= {
        "stack_reversal", "queue_copy", "deque_copy", "deque_reversal", "dyck_stack", "dyck_pushpop",
        "lstm_reversal", "lstm_copy", "lstm_dyck", "ntm_and_stack_reversal",
    }
    for path in PRESETS:
        assert path.read_text().startswith("#"), f"{path.name} should open with a comment saying what it trains"


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_a_preset_checks_and_trains_one_step(path, tmp_path):
    check_config(path)
    main([
        "fit", "--config", str(path),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false",
        "--data.init_args.batch_size", "2",
        "--data.init_args.max_length", "12",
        "--data.init_args.val_batches", "1",
        "--data.init_args.test_batches", "1",
    ])
    checkpoint = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)
    assert checkpoint["global_step"] == 1


def test_the_lstm_baselines_have_about_the_stack_models_parameter_count():
    from mannkit.cell import MemoryCell

    stack = MemoryCell(LSTMController(256), NeuralStack(64), [NeuralStackHead()], clip=20.0)
    lstm = ControllerCell(LSTMController(192, layers=2))
    for model in (stack, lstm):
        model.bind(129, 128)
    counts = [sum(p.numel() for p in m.parameters()) for m in (stack, lstm)]
    assert 0.8 < counts[1] / counts[0] < 1.25, counts


def test_the_pictures_show_the_strengths_over_time_and_the_stack_at_the_end():
    from mannkit.cell import MemoryCell

    torch.manual_seed(0)
    cell = MemoryCell(LSTMController(13), NeuralStack(5), [NeuralStackHead()])
    cell.bind(3, 2)
    trace = {k: v[0].detach().numpy() for k, v in cell(torch.randn(2, 7, 3), record=True).trace.items()}
    assert trace["strengths"].shape == (7, 7) and trace["values"].shape == (7, 7, 5)
    assert trace["strengths"][0, 1:].sum() == 0  # after step 1 one value is stored; the rest is padding
    figures = draw_trace(trace)
    assert {"strengths", "values", "push", "pop", "read_weights"} <= set(figures)

    pushpop = MemoryCell(LSTMController(13), PushPopStack(stacks=2, depth=5, word_size=3), [PushPopStackHead()])
    pushpop.bind(3, 2)
    figures = draw_trace({k: v[0].detach().numpy() for k, v in pushpop(torch.randn(2, 7, 3), record=True).trace.items()})
    assert {"stacks", "action_weights"} <= set(figures)


@pytest.mark.parametrize(("name", "push", "pop"), [
    ("stack_reversal", [0.5], [0.05]),          # keeps every input; no push near 1 to hide the top while answering
    ("queue_copy", [0.95], [0.05]),             # keep everything; the bottom it reads is not what it pushes on
    ("deque_reversal", [0.5, 0.05], [0.05, 0.05]),  # reads the top, as a stack
    ("deque_copy", [0.95, 0.0], [0.05, 0.05]),      # reads the bottom, as a queue
])
def test_the_transduction_presets_start_with_the_gates_their_comments_promise(name, push, pop):
    import yaml

    from mannkit.core.config import instantiate

    preset = yaml.safe_load((ROOT / "configs" / "stack" / f"{name}.yaml").read_text())
    torch.manual_seed(0)
    cell = instantiate(preset["model"]["init_args"]["core"], "core")
    cell.bind(input_size=6, output_size=4)
    with torch.no_grad():
        trace = cell(torch.zeros(8, 5, 6), record=True).trace  # [B, T, E] gates from a blank input
    for key, expected in (("push", push), ("pop", pop)):
        mean = trace[key].mean(dim=(0, 1))  # one per end
        assert mean.shape == (len(expected),)
        assert torch.allclose(mean, torch.tensor(expected), atol=0.1), (key, mean.tolist(), expected)
