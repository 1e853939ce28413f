"""MemoryPictures: images in TensorBoard and as PNG files after a tiny fit; the drawing of any trace."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from matplotlib.image import imread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mannkit import viz
from mannkit.callbacks import MemoryPictures
from mannkit.callbacks.memory_pictures import example_figures
from mannkit.cell import MemoryCell
from mannkit.cli import main
from mannkit.core.errors import ConfigError
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, WriteHead
from mannkit.systems import SequenceSystem
from mannkit.tasks import CopyTask

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_copy.yaml"
ENTRIES = ("example", "read_weights", "write_weights", "memory")


def _titled(fig, prefix: str) -> list:
    return [ax for ax in fig.axes if ax.get_title().startswith(prefix)]


# -- after a tiny fit ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """The tiny config with two read heads and MemoryPictures; validations at steps 3 and 6."""
    root = tmp_path_factory.mktemp("pictures")
    config = yaml.safe_load(FIXTURE.read_text())
    config["trainer"]["callbacks"].append({"class_path": "MemoryPictures"})
    config["model"]["init_args"]["core"]["init_args"]["heads"][1]["init_args"]["count"] = 2
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(path), "--trainer.default_root_dir", str(root)])
    return next(root.rglob("events.out.tfevents.*")).parent


def test_tensorboard_images_per_entry_and_validation(fitted):
    events = EventAccumulator(str(fitted), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert {f"memory/{name}" for name in ENTRIES} <= set(events.Tags()["images"])
    for name in ENTRIES:
        images = events.Images(f"memory/{name}")
        assert [im.step for im in images] == [3, 6]  # the sanity check at step 0 draws nothing
        assert all(im.width > 100 and im.height > 100 for im in images), name


def test_png_files_are_readable_and_match_tensorboard(fitted):
    events = EventAccumulator(str(fitted), size_guidance={"images": 0})
    events.Reload()
    for step in (3, 6):
        for name in ENTRIES:
            pixels = imread(fitted / "pictures" / f"step{step:06d}_{name}.png")
            assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
            assert pixels[..., :3].std() > 0, f"{name} at step {step} is blank"
            image = next(im for im in events.Images(f"memory/{name}") if im.step == step)
            assert pixels.shape[:2] == (image.height, image.width)
    assert len(list((fitted / "pictures").iterdir())) == 2 * len(ENTRIES)


def test_read_panels_follow_the_configured_head_count(fitted):
    # two read heads side by side make the read picture wider than the one-head write picture
    read = imread(fitted / "pictures" / "step000006_read_weights.png")
    write = imread(fitted / "pictures" / "step000006_write_weights.png")
    assert read.shape[1] > 1.5 * write.shape[1]


def test_every_n_validations_and_png_only_from_the_command_line(tmp_path):
    main(["fit", "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path),
          "--trainer.callbacks+=MemoryPictures", "--trainer.callbacks.every_n_validations", "2",
          "--trainer.callbacks.tensorboard", "false"])
    run = next(tmp_path.rglob("events.out.tfevents.*")).parent
    assert sorted(p.name for p in (run / "pictures").iterdir()) == sorted(f"step000006_{n}.png" for n in ENTRIES)
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == []


def test_validate_names_pictures_by_the_step_of_its_checkpoint(tmp_path):
    # fit to step 6, then `mannkit validate --ckpt_path last.ckpt`: its pictures show the weights of step 6, not 0
    main(["fit", "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path)])
    ckpt = next(tmp_path.rglob("last.ckpt"))
    main(["validate", "--config", str(FIXTURE), "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", str(ckpt),
          "--trainer.callbacks+=MemoryPictures", "--trainer.callbacks.tensorboard", "false"])
    pictures = sorted(p.name for p in tmp_path.rglob("pictures/*.png"))
    assert pictures == sorted(f"step000006_{n}.png" for n in ENTRIES)


# -- drawing, without a trainer ---------------------------------------------------------------
def _synthetic_trace(T=5, N=7, W=11, read=2, write=3):
    rng = np.random.default_rng(0)
    weights = lambda h: rng.dirichlet(np.ones(N), size=(T, h))  # noqa: E731  [T, h, N]
    return {
        "read_weights": weights(read),
        "write_weights": weights(write),
        "memory": rng.normal(size=(T, N, W)),
        "usage": rng.random((T, N)),
        "stack_strengths": rng.random((T, 13)),
        "ponder": rng.random(T),
        "odd": rng.random((T, 2, 3, 4)),  # nothing to draw for rank 4: skipped
    }


def test_one_panel_per_head_with_time_and_slot_axes():
    figures = viz.draw_trace(_synthetic_trace())
    for kind, heads in (("read", 2), ("write", 3)):
        panels = _titled(figures[f"{kind}_weights"], f"{kind} head ")
        assert [ax.get_title() for ax in panels] == [f"{kind} head {k}" for k in range(heads)]
        for ax in panels:
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("time step", "memory slot")
            assert ax.images[0].get_array().shape == (7, 5)  # [N, T]


def test_step_labels_name_every_time_step_on_every_time_axis():
    words = ["mary", "went", "home", ".", "-"]
    figures = viz.draw_trace(_synthetic_trace(), step_labels=words)
    for name in ("read_weights", "usage", "ponder"):
        for ax in [a for a in figures[name].axes if a.get_label() != "<colorbar>" and a.get_title()]:
            assert [t.get_text() for t in ax.get_xticklabels()] == words, name
            assert ax.get_xlabel() == "input at each time step"
    plain = viz.draw_trace(_synthetic_trace())["read_weights"]
    assert figures["read_weights"].get_size_inches()[1] > plain.get_size_inches()[1]  # panels stacked, labels fit
    example = viz.draw_example(np.zeros((5, 3)), np.zeros((5, 2)), np.zeros((5, 2)), step_labels=words)
    assert [t.get_text() for t in _titled(example, "input")[0].get_xticklabels()] == words


def test_memory_is_drawn_at_the_last_step():
    trace = _synthetic_trace()
    (ax,) = _titled(viz.draw_trace(trace)["memory"], "memory")
    assert ax.get_title() == "memory at step 4"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("word element", "memory slot")
    np.testing.assert_allclose(ax.images[0].get_array(), trace["memory"][-1].astype(np.float32))


def test_entries_a_plugin_adds_are_drawn_without_changes():
    figures = viz.draw_trace(_synthetic_trace())
    assert sorted(figures) == ["memory", "ponder", "read_weights", "stack_strengths", "usage", "write_weights"]
    (usage,) = _titled(figures["usage"], "usage")
    assert usage.get_ylabel() == "memory slot" and usage.images[0].get_array().shape == (7, 5)
    (stack,) = _titled(figures["stack_strengths"], "stack strengths")
    assert stack.get_ylabel() == "stack strengths index"  # 13 is not the number of slots
    (ponder,) = _titled(figures["ponder"], "ponder")
    assert len(ponder.lines[0].get_xdata()) == 5 and ponder.get_xlabel() == "time step"
    for name, fig in figures.items():
        pixels = viz.to_rgb(fig)
        assert pixels.dtype == np.uint8 and pixels.shape[1] > 100 and pixels.std() > 0, name


def test_example_figures_from_a_model_in_eval_mode():
    task = CopyTask(bits=3, max_length=4, batch_size=2)
    cell = MemoryCell(LSTMController(8), MatrixMemory(7, 5),
                      [WriteHead(ContentAddressing()), ReadHead(ContentAddressing(), count=2)])
    system = SequenceSystem(cell, input_size=task.input_size, output_size=task.output_size)
    modes: list[bool] = []
    system.core.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    batch = task.example_batch(2)
    system.train()
    figures = example_figures(system, batch, example_index=1, max_time=3)
    assert modes == [False] and system.training
    assert sorted(figures) == ["example", "memory", "read_weights", "write_weights"]
    assert len(_titled(figures["read_weights"], "read head")) == 2
    assert _titled(figures["read_weights"], "read head 1")[0].images[0].get_array().shape == (7, 3)
    (inputs,) = _titled(figures["example"], "input")
    np.testing.assert_array_equal(inputs.images[0].get_array(), batch["input"][1, :3].T.numpy())
    with pytest.raises(ConfigError, match=r"example_index 2 is outside the example batch of 2; use 0 to 1\."):
        example_figures(system, batch, example_index=2)
    labels = [f"w{t}" for t in range(batch["input"].shape[1])]
    labelled = example_figures(system, batch, example_index=1, max_time=3, step_labels=labels)
    assert [t.get_text() for t in _titled(labelled["read_weights"], "read head 0")[0].get_xticklabels()] == labels[:3]
    with pytest.raises(ValueError, match=r"2 step labels for \d+ time steps; give one per step"):
        example_figures(system, batch, step_labels=labels[:2])
    assert torch.is_grad_enabled()  # no_grad is left behind


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every_n_validations": 0}, r"every_n_validations must be 1 or more, got 0\."),
        ({"example_index": -1}, r"example_index must be 0 or more, got -1\."),
        ({"max_time": 0}, r"max_time must be null or 1 or more, got 0\."),
        ({"png": False, "tensorboard": False}, r"png and tensorboard are both false"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MemoryPictures(**kwargs)


def test_counter_is_checkpointed():
    callback = MemoryPictures()
    callback.validations = 5
    restored = MemoryPictures()
    restored.load_state_dict(callback.state_dict())
    assert restored.validations == 5
