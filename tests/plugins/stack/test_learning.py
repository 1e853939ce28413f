"""A tiny seeded run that learns: a neural queue copies, past its training length, when it starts as "keep everything"."""

import torch

from mannkit.cell import MemoryCell
from mannkit.metrics import coarse_accuracy
from mannkit.nn import LSTMController
from mannkit.systems.losses import masked_cross_entropy_loss
from mannkit.tasks import CopyTransduction
from mannkit.tasks.base import make_generator
from mannkit_stack import NeuralQueue, NeuralStackHead


def test_a_queue_with_keep_everything_biases_learns_copy_and_generalises_to_twice_the_length():
    torch.manual_seed(0)
    task = CopyTransduction(symbols=8, min_length=2, max_length=6, test_lengths=[12], batch_size=16, seed=0)
    cell = MemoryCell(LSTMController(32), NeuralQueue(16), [NeuralStackHead(push_bias=3.0, pop_bias=-3.0)])
    cell.bind(task.input_size, task.output_size)
    optimizer = torch.optim.RMSprop(cell.parameters(), lr=3e-3)
    generator = make_generator(0, "train")
    for _ in range(800):
        batch = task.make_batch(generator, 16, **task.train_difficulty())
        loss = masked_cross_entropy_loss(cell(batch["input"]).logits, batch["target"], batch["mask"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(cell.parameters(), 1.0)
        optimizer.step()
    with torch.no_grad():
        for length, floor in ((6, 0.95), (12, 0.9)):
            batch = task.make_batch(make_generator(99, "check"), 64, min_length=length, max_length=length)
            accuracy = coarse_accuracy(cell(batch["input"]).logits, batch["target"], batch["mask"]).float().mean().item()
            assert accuracy >= floor, f"whole-sequence accuracy {accuracy:.3f} at length {length}"
