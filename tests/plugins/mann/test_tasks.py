"""Sequential Omniglot (labels one step late, its own characters for validation and test), pattern completion,
and accuracy by presentation."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from mannkit.core.errors import ConfigError
from mannkit_mann import PatternCompletionTask, PresentationAccuracy, SequentialOmniglotTask, accuracy_by_presentation, presentations


def _omniglot(root: Path, characters: int, images: int, size: int = 16) -> Path:
    for c in range(characters):
        folder = root / "images_evaluation" / "Alpha" / f"character{c:02d}"
        folder.mkdir(parents=True)
        for i in range(images):
            pixels = bytearray([255] * size * size)
            pixels[c * size : c * size + 4 + i % 3] = bytes(4 + i % 3)  # ink on row c
            Image.frombytes("L", (size, size), bytes(pixels)).save(folder / f"{i}.png")
    return root


def test_sequential_omniglot_episodes(tmp_path):
    task = SequentialOmniglotTask(str(_omniglot(tmp_path, 6, 10)), classes=3, samples=4, side=8, train_characters=3,
                                  val_characters=1, batch_size=2, val_batches=1, test_batches=1)
    assert (task.input_size, task.output_size) == (64 + 3, 3)
    batch = task.make_batch(torch.Generator().manual_seed(0), 2)
    x, y = batch["input"], batch["target"]
    assert x.shape == (2, 12, 67) and y.shape == (2, 12) and batch["mask"].sum() == 24
    assert (x[:, 0, 64:] == 0).all()  # no label before the first step
    assert torch.equal(x[:, 1:, 64:].argmax(-1), y[:, :-1]) and (x[:, 1:, 64:].sum(-1) == 1).all()  # step t sees y_{t-1}
    assert all(sorted(row.tolist()) == [0] * 4 + [1] * 4 + [2] * 4 for row in y)  # 3 classes x 4 samples
    pool = {split: torch.cat(task.splits.classes(split)).flatten(1) for split in ("train", "val")}  # [images, 64]
    found = lambda images, split: all((pool[split] == im).all(-1).any() for im in images.reshape(-1, 64))  # noqa: E731
    assert found(x[..., :64], "train") and not found(x[..., :64], "val")
    assert found(task.val_set[0]["input"][..., :64], "val")  # validation draws its own characters


def test_sequential_omniglot_refuses_too_few_images(tmp_path):
    task = SequentialOmniglotTask(str(_omniglot(tmp_path, 6, 3)), classes=2, samples=4, side=8, train_characters=3, val_characters=1)
    with pytest.raises(ConfigError, match=r"character folder '.*character03' has 3 images but an episode needs 4 per class"):
        task.val_set  # noqa: B018


def test_presentation_counts_and_accuracy():
    target = torch.tensor([[0, 1, 0, 0, 1, 2]])
    assert presentations(target).tolist() == [[1, 1, 2, 3, 2, 1]]
    logits = torch.nn.functional.one_hot(torch.tensor([[1, 1, 0, 2, 1, 2]]), 3).float()  # right at steps 1, 2, 4, 5
    hits, counts = accuracy_by_presentation(logits, target, 3)
    assert hits.tolist() == [2, 2, 0] and counts.tolist() == [3, 2, 1]
    metric = PresentationAccuracy(3)
    metric.update(logits, target)
    metric.update(logits, target)
    assert torch.allclose(metric.compute(), torch.tensor([2 / 3, 1.0, 0.0]))


def test_pattern_completion_episode():
    task = PatternCompletionTask(bits=6, patterns=2, presentation=3, gap=1, cycles=2, batch_size=4)
    batch = task.make_batch(torch.Generator().manual_seed(1), 4)
    x, target, mask = batch["input"], batch["target"], batch["mask"]
    T = 2 * 2 * (3 + 1) + 3
    assert x.shape == (4, T, 7) and target.shape == (4, T, 6) and (x[..., -1] == 1).all()
    assert mask[:, -3:].sum() == 12 and mask[:, :-3].sum() == 0
    probe, wanted = x[:, -1, :6], target[:, -1]
    assert ((probe == 0).sum(-1) == 3).all()  # half the bits hidden
    assert torch.equal(probe[probe != 0], wanted[probe != 0])  # the rest shown as they are
    shown = x[:, :-3, :6]
    for b in range(4):  # the wanted pattern was presented earlier
        assert any(torch.equal(shown[b, t], wanted[b]) for t in range(T - 3))
