"""Episodic tasks: sinusoid regression and N-way K-shot Omniglot from a folder (tiny generated PNGs here)."""

import math
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from mannkit.core.errors import ConfigError
from mannkit.tasks import OmniglotTask, SinusoidTask


def test_sinusoid_draws_in_the_paper_ranges_and_is_a_sine_per_task():
    task = SinusoidTask(shots=4, queries=6, meta_batch=7)
    batch = task.make_batch(torch.Generator().manual_seed(3), "train")
    assert batch["support_x"].shape == (7, 4, 1) and batch["query_y"].shape == (7, 6, 1)
    x = torch.cat([batch["support_x"], batch["query_x"]], 1)[..., 0]  # [E, 10]
    y = torch.cat([batch["support_y"], batch["query_y"]], 1)[..., 0]
    assert x.min() >= -5 and x.max() <= 5
    for xe, ye in zip(x, y):  # recover A and phi from two points, check all the others
        # y = A sin(x - phi) = a sin x + b cos x with a = A cos phi, b = -A sin phi
        basis = torch.stack([torch.sin(xe), torch.cos(xe)], 1)
        a, b = torch.linalg.lstsq(basis.double(), ye.double().unsqueeze(1)).solution[:, 0]
        amplitude, phase = math.hypot(a, b), math.atan2(-b, a)
        assert 0.1 - 1e-5 <= amplitude <= 5 + 1e-5 and -1e-5 <= phase <= math.pi + 1e-5
        assert torch.allclose(basis.double() @ torch.stack([a, b]), ye.double(), atol=1e-4)


def test_sinusoid_fixed_sets_and_seeded_training_stream():
    a, b = SinusoidTask(meta_batch=3, train_batches=2, seed=5), SinusoidTask(meta_batch=3, train_batches=2, seed=5)
    assert torch.equal(a.val_set[0]["support_x"], b.val_set[0]["support_x"])
    assert not torch.equal(a.val_set[0]["support_x"], a.test_set[0]["support_x"])
    first = [x["query_y"] for x in a.train_dataloader()]
    second = [x["query_y"] for x in a.train_dataloader()]
    assert torch.equal(first[0], [x["query_y"] for x in b.train_dataloader()][0])
    assert not torch.equal(first[0], second[0])  # the next epoch draws other tasks


def test_sinusoid_sequences_feed_the_previous_target():
    task = SinusoidTask(shots=2, queries=3, sequence_length=6, meta_batch=2)
    batch = task.val_set[0]
    assert task.input_size == 2 and batch["support_x"].shape == (2, 2, 6, 2) and batch["support_y"].shape == (2, 2, 6, 1)
    x, y = batch["query_x"], batch["query_y"]
    assert torch.equal(x[..., 1:, 1], y[..., :-1, 0]) and (x[..., 0, 1] == 0).all()


@pytest.mark.parametrize("options, match", [
    ({"shots": 0}, r"SinusoidTask: shots must be an integer of at least 1, got 0; set shots to 1 or more"),
    ({"amplitude_min": 3.0, "amplitude_max": 1.0}, r"0 <= amplitude_min <= amplitude_max, got 3.0 and 1.0"),
    ({"meta_batch": 0}, r"SinusoidTask: meta_batch must be an integer of at least 1"),
])
def test_sinusoid_refusals(options, match):
    with pytest.raises(ConfigError, match=match):
        SinusoidTask(**options)


def _write_characters(root: Path, characters: int, images: int = 4, size: int = 12) -> Path:
    """``characters`` folders of ``images`` PNGs each: character c is a white square with a black bar at row c."""
    for c in range(characters):
        folder = root / "images_background" / f"Alphabet{c // 3}" / f"character{c:02d}"
        folder.mkdir(parents=True)
        for i in range(images):
            pixels = bytearray([255] * size * size)
            for col in range(size // 2 + i % 2):
                pixels[(c % size) * size + col] = 0  # an ink bar at row c, length depending on the drawing
            Image.frombytes("L", (size, size), bytes(pixels)).convert("1").save(folder / f"{c:02d}_{i}.png")
    return root


def test_omniglot_episodes_from_a_folder(tmp_path):
    root = _write_characters(tmp_path, 6)
    task = OmniglotTask(str(root), ways=3, shots=1, queries=2, train_characters=3, val_characters=1, side=12, meta_batch=2)
    assert (task.input_size, task.output_size) == (144, 3)
    batch = task.make_batch(torch.Generator().manual_seed(0), "train")
    assert batch["support_x"].shape == (2, 3, 144) and batch["query_x"].shape == (2, 6, 144)
    assert batch["support_y"][0].tolist() == [0, 1, 2] and batch["query_y"][0].tolist() == [0, 0, 1, 1, 2, 2]
    classes = task.splits.classes("train")
    assert len(classes) == 12  # 3 characters x 4 rotations
    ink = classes[0][0]  # character 0 at 0 degrees: ink (1) on row 0, paper (0) elsewhere
    assert ink[0, :6].min() > 0.5 and ink[6:].max() < 0.5
    assert torch.equal(classes[1], torch.rot90(classes[0], 1, dims=(1, 2)))  # the 90-degree class
    for e in range(2):  # a support image and the queries of its label come from the same class
        s, q = batch["support_x"][e].view(3, 12, 12), batch["query_x"][e].view(3, 2, 12, 12)
        same = [(s[k] > 0.5).eq(q[k, 0] > 0.5).float().mean() for k in range(3)]
        assert min(same) > 0.9
    assert torch.equal(task.val_set[0]["query_x"], OmniglotTask(str(root), ways=3, queries=2, train_characters=3,
                       val_characters=1, side=12, meta_batch=2).val_set[0]["query_x"])


def test_omniglot_missing_folder_is_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match=r"OmniglotTask: data_dir '.*nowhere' is not a folder; pass the folder that holds "
                                          r"Omniglot's images_background and images_evaluation as data_dir\."):
        OmniglotTask(str(tmp_path / "nowhere"))


def test_omniglot_folder_without_images_is_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match=r"data_dir '.*' holds no PNG images; pass the folder"):
        OmniglotTask(str(tmp_path))


def test_omniglot_too_few_characters_or_classes(tmp_path):
    root = _write_characters(tmp_path, 3)
    with pytest.raises(ConfigError, match=r"holds 3 characters, too few for 1200 training, 100 validation and at least 1 test"):
        OmniglotTask(str(root))
    with pytest.raises(ConfigError, match=r"the train split of data_dir '.*' has 4 classes \(1 characters x 4 rotations\), "
                                          r"too few for 5-way episodes; lower ways or give more characters"):
        OmniglotTask(str(root), ways=5, train_characters=1, val_characters=1)


def test_omniglot_unreadable_image_and_short_character(tmp_path):
    root = _write_characters(tmp_path, 4)
    bad = next((root / "images_background").rglob("00_1.png"))
    bad.write_bytes(b"not a png")
    task = OmniglotTask(str(root), ways=2, shots=1, queries=1, train_characters=2, val_characters=1, side=12)
    with pytest.raises(ConfigError, match=r"cannot read the image '.*00_1.png' \(UnidentifiedImageError\); replace or delete"):
        task.val_set  # noqa: B018  (the training split is read when first needed)
        task.make_batch(torch.Generator(), "train")
    task = OmniglotTask(str(root), ways=2, shots=3, queries=2, train_characters=2, val_characters=1, side=12)
    with pytest.raises(ConfigError, match=r"character folder '.*character02' has 4 images but an episode needs 5 per class"):
        task.val_set  # noqa: B018


OMNIGLOT = Path(os.environ.get("MANNKIT_OMNIGLOT", "/work/shared/data/omniglot"))


@pytest.mark.skipif(not (OMNIGLOT / "images_evaluation").is_dir(), reason="the Omniglot folder is not here (set MANNKIT_OMNIGLOT)")
def test_real_omniglot_has_the_usual_split():
    task = OmniglotTask(str(OMNIGLOT), ways=5, shots=1, queries=1, meta_batch=1, val_batches=1)
    assert len(task.splits.folders) == 1623
    assert task.splits.ranges == {"train": (0, 1200), "val": (1200, 1300), "test": (1300, 1623)}
    assert task.val_set[0]["support_x"].shape == (1, 5, 784)
