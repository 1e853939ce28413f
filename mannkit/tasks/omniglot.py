"""Omniglot from a folder of PNGs: the character classes, their splits, and N-way K-shot episodes.

Shape letters: C classes of a split, N ways, K shots, Q queries per class, P = side * side pixels.

The folder is the one the user names (``data_dir``); it holds Omniglot's ``images_background`` and
``images_evaluation`` (or any tree whose leaf folders of PNGs are the characters). Characters are taken
in sorted path order (background before evaluation, 1623 in all); the first ``train_characters`` (1200,
the usual split) train, the next ``val_characters`` validate and the rest test. Each character turned
by 0, 90, 180 and 270 degrees is a class of its own (Santoro et al. 2016; Finn et al. 2017), so a split
of c characters has 4c classes. Images are read once, resized to ``side x side`` and inverted (ink = 1).

Every user mistake is one sentence naming the path and the fix: a missing folder, a folder with too
few characters for the splits or the N ways, a character with too few images, an unreadable PNG.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from mannkit.core.errors import ConfigError
from mannkit.core.registry import register
from mannkit.tasks.episodic import Episode, EpisodicTask, check_count

__all__ = ["OmniglotTask", "character_folders", "load_characters", "OmniglotSplits"]

_FIX = "pass the folder that holds Omniglot's images_background and images_evaluation as data_dir"


def character_folders(data_dir: str | Path, owner: str) -> list[Path]:
    """Every folder under ``data_dir`` that directly holds PNG files (a character), in sorted path order."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{owner}: data_dir '{root}' is not a folder; {_FIX}.")
    folders = sorted({p.parent for p in root.rglob("*.png")})
    if not folders:
        raise ConfigError(f"{owner}: data_dir '{root}' holds no PNG images; {_FIX}.")
    return folders


def load_characters(folders: list[Path], side: int, owner: str) -> list[Tensor]:
    """One ``[n_i, side, side]`` float tensor (ink = 1) per character folder."""
    from PIL import Image, UnidentifiedImageError  # pillow comes with matplotlib

    characters = []
    for folder in folders:
        images = []
        for path in sorted(folder.glob("*.png")):
            try:
                with Image.open(path) as image:
                    small = image.convert("L").resize((side, side), Image.Resampling.LANCZOS)
                    data = torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8)
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise ConfigError(f"{owner}: cannot read the image '{path}' ({type(exc).__name__}); "
                                  "replace or delete that file (re-extract the Omniglot archive).") from None
            images.append(1.0 - data.float().view(side, side) / 255.0)  # white paper 0, ink 1
        characters.append(torch.stack(images))
    return characters


class OmniglotSplits:
    """The classes of each split: ``classes(split)`` is a list of ``[n, side, side]`` image tensors.

    Args:
        data_dir: the folder of character folders.
        train_characters: characters of the training split (1200).
        val_characters: characters of the validation split, taken after the training ones.
        side: images are resized to ``side x side`` (28).
        min_images: images each character must have (K shots + Q queries).
        owner: the task's name, for messages.
    """

    def __init__(self, data_dir: str, train_characters: int, val_characters: int, side: int, min_images: int, owner: str) -> None:
        self.data_dir, self.side, self.owner, self.min_images = data_dir, side, owner, min_images
        self.folders = character_folders(data_dir, owner)
        n = len(self.folders)
        if n < train_characters + val_characters + 1:
            raise ConfigError(
                f"{owner}: data_dir '{data_dir}' holds {n} characters, too few for {train_characters} training, "
                f"{val_characters} validation and at least 1 test character; lower train_characters/val_characters "
                f"or {_FIX}.")
        self.ranges = {"train": (0, train_characters), "val": (train_characters, train_characters + val_characters),
                       "test": (train_characters + val_characters, n)}
        self._classes: dict[str, list[Tensor]] = {}

    def classes(self, split: str) -> list[Tensor]:
        """The split's classes, each ``[n, side, side]``: every character at 0, 90, 180 and 270 degrees."""
        if split not in self._classes:
            start, stop = self.ranges[split]
            folders = self.folders[start:stop]
            characters = load_characters(folders, self.side, self.owner)
            for folder, images in zip(folders, characters):
                if images.shape[0] < self.min_images:
                    raise ConfigError(
                        f"{self.owner}: the character folder '{folder}' has {images.shape[0]} images but an episode needs "
                        f"{self.min_images} per class (shots + queries); lower shots or queries, or complete that folder.")
            self._classes[split] = [torch.rot90(c, k, dims=(1, 2)) for c in characters for k in range(4)]
        return self._classes[split]

    def check_ways(self, split: str, ways: int) -> None:
        """Refuse a split with fewer than ``ways`` classes."""
        start, stop = self.ranges[split]
        if 4 * (stop - start) < ways:
            raise ConfigError(
                f"{self.owner}: the {split} split of data_dir '{self.data_dir}' has {4 * (stop - start)} classes "
                f"({stop - start} characters x 4 rotations), too few for {ways}-way episodes; lower ways or give more characters.")


@register(kind="task")
class OmniglotTask(EpisodicTask):
    """N-way K-shot Omniglot episodes (Vinyals et al. 2016; MAML, Finn et al. 2017, section 5.2).

    Each task draws N classes of its split (rotations included) and, per class, K support and Q query
    images; class labels 0..N-1 are assigned in the drawn order (random per task). Inputs are flat images
    ``[S, side * side]`` (I = 784 for 28 x 28), targets class ids; S = N K support and N Q query examples.

    Args:
        data_dir: folder holding Omniglot's ``images_background`` and ``images_evaluation`` PNG folders.
        ways: N, classes per task.
        shots: K, support images per class.
        queries: Q, query images per class.
        train_characters: characters of the training split (the first, in sorted path order).
        val_characters: characters of the validation split (the next ones); the rest test.
        side: images are resized to side x side.
        meta_batch: E, tasks per batch.
        train_batches: meta-batches per training epoch.
        val_batches: meta-batches in the fixed validation set.
        test_batches: meta-batches in the fixed test set.
        seed: seed of every drawn task.
    """

    loss = "ce"

    def __init__(self, data_dir: str, ways: int = 5, shots: int = 1, queries: int = 15, train_characters: int = 1200,
                 val_characters: int = 100, side: int = 28, meta_batch: int = 32, train_batches: int = 1000,
                 val_batches: int = 4, test_batches: int = 20, seed: int = 0) -> None:
        super().__init__(meta_batch, train_batches, val_batches, test_batches, seed)
        for name, value, low in (("ways", ways, 2), ("shots", shots, 1), ("queries", queries, 1), ("side", side, 4),
                                 ("train_characters", train_characters, 1), ("val_characters", val_characters, 1)):
            check_count("OmniglotTask", name, value, low)
        self.ways, self.shots, self.queries, self.side = ways, shots, queries, side
        self.splits = OmniglotSplits(data_dir, train_characters, val_characters, side, shots + queries, "OmniglotTask")
        for split in ("train", "val", "test"):
            self.splits.check_ways(split, ways)
        self.input_size, self.output_size = side * side, ways

    def episode(self, generator: torch.Generator, split: str) -> Episode:
        classes = self.splits.classes(split)
        N, K, Q = self.ways, self.shots, self.queries
        chosen = torch.randperm(len(classes), generator=generator)[:N].tolist()  # label i <- class chosen[i]
        support, query = [], []
        for c in chosen:
            images = classes[c]
            picks = torch.randperm(images.shape[0], generator=generator)[: K + Q]
            drawn = images[picks].flatten(1)  # [K+Q, side, side] -> [K+Q, P]
            support.append(drawn[:K])
            query.append(drawn[K:])
        labels = torch.arange(N)
        return {
            "support_x": torch.cat(support), "support_y": labels.repeat_interleave(K),  # [N K, P], [N K]
            "query_x": torch.cat(query), "query_y": labels.repeat_interleave(Q),  # [N Q, P], [N Q]
        }
