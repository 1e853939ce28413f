"""configs/meta/: every preset passes the config check and one training step (Omniglot on tiny generated PNGs)."""

from pathlib import Path

import pytest
import torch
from PIL import Image

import mannkit.callbacks  # noqa: F401  (check_config resolves short names; main() imports these itself)
import mannkit.systems  # noqa: F401
from mannkit.cli import check_config, main

ROOT = Path(__file__).parents[2]
PRESETS = sorted((ROOT / "configs" / "meta").glob("*.yaml"))


def _omniglot(root: Path, characters: int = 7, images: int = 3) -> Path:
    """Tiny 28 x 28 black-on-white PNGs: character c has an ink block at a place of its own."""
    for c in range(characters):
        folder = root / "images_background" / "Alphabet" / f"character{c:02d}"
        folder.mkdir(parents=True)
        for i in range(images):
            pixels = bytearray([255] * 28 * 28)
            for k in range(20 + i):
                pixels[(3 * c + k // 7) * 28 + (k % 7) + i] = 0
            Image.frombytes("L", (28, 28), bytes(pixels)).save(folder / f"{i}.png")
    return root


def _overrides(path: Path, tmp_path: Path) -> list[str]:
    data = path.read_text()
    if "SequentialOmniglotTask" in data:
        return ["--data.init_args.data_dir", str(_omniglot(tmp_path / "omniglot", images=10)), "--data.init_args.train_characters", "3",
                "--data.init_args.val_characters", "2", "--data.init_args.batch_size", "2", "--data.init_args.side", "20"]
    if "OmniglotTask" in data:
        return ["--data.init_args.data_dir", str(_omniglot(tmp_path / "omniglot")), "--data.init_args.train_characters", "3",
                "--data.init_args.val_characters", "2", "--data.init_args.queries", "2", "--data.init_args.meta_batch", "2"]
    if "PatternCompletionTask" in data:
        return ["--data.init_args.batch_size", "2"]
    return ["--data.init_args.meta_batch", "2"]


def test_the_folder_has_the_presets_and_each_says_what_it_trains():
    assert {p.stem for p in PRESETS} >= {"maml_sinusoid", "fomaml_sinusoid", "maml_omniglot_5way1shot", "maml_memory_sinusoid",
                                         "maml_mann_sinusoid", "mann_sequential_omniglot", "lstm_sequential_omniglot", "plastic_patterns"}
    for path in PRESETS:
        assert path.read_text().startswith("#"), f"{path.name} should open with a comment saying what it trains"


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_a_preset_checks_and_trains_one_step(path, tmp_path):
    check_config(path)
    main([
        "fit", "--config", str(path),
        "--trainer.default_root_dir", str(tmp_path / "run"),
        "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "1",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false",
        "--data.init_args.val_batches", "1",
        "--data.init_args.test_batches", "1",
        *_overrides(path, tmp_path),
    ])
    checkpoint = torch.load(next((tmp_path / "run").rglob("last.ckpt")), weights_only=True)
    assert checkpoint["global_step"] == 1
