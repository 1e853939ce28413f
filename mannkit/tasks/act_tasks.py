"""The synthetic tasks of the ACT paper (Graves 2016, section 3): parity, logic and addition.

Shape letters: B batch, T time, I input width, O output width (classes times digits for
addition), S parity vector size, L sequence length, G gates per vector, D digits.

Every task is generated from its seed (:class:`~mannkit.tasks.SequenceTask`); each example of a
batch draws its own difficulty within the training range (entries set, gates, digits), so the
ponder time can be read against it. The sequence length L is drawn per batch.

>>> ParityTask(size=8, min_entries=1, max_entries=8, test_entries=[8]).example_batch(2)["input"].shape
torch.Size([2, 1, 8])
>>> logic_gates(torch.tensor([0, 2]), torch.tensor([1, 1]), torch.tensor([1, 0])).tolist()  # AND(1,1), XOR(1,0)
[1, 1]
>>> sum_digits(torch.tensor([120, 7]), 6).tolist()
[[1, 2, 0, 10, 10, 10], [7, 10, 10, 10, 10, 10]]
"""

from __future__ import annotations

import torch
from torch import Tensor

from mannkit.core.registry import register
from mannkit.tasks.base import Batch, SequenceTask
from mannkit.tasks.difficulty import Difficulty, check_at_least

__all__ = ["ParityTask", "LogicTask", "AdditionTask", "GATES", "logic_gates", "sum_digits"]

#: The 10 binary gates of the logic task: the 16 functions of two bits less the 6 that ignore an input
#: (constants, a, b, not a, not b). Row g is gate g's truth table, indexed by ``2 a + b``.
GATES = torch.tensor(
    [
        [0, 0, 0, 1],  # 0 AND
        [0, 1, 1, 1],  # 1 OR
        [0, 1, 1, 0],  # 2 XOR
        [1, 1, 1, 0],  # 3 NAND
        [1, 0, 0, 0],  # 4 NOR
        [1, 0, 0, 1],  # 5 XNOR
        [0, 0, 1, 0],  # 6 a AND NOT b
        [0, 1, 0, 0],  # 7 NOT a AND b
        [1, 0, 1, 1],  # 8 a OR NOT b
        [1, 1, 0, 1],  # 9 NOT a OR b
    ]
)


def logic_gates(gate: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``gate_g(a, b)`` for gate ids ``gate [B]`` and bits ``a, b [B]`` (int64 0/1): ``[B]``."""
    return GATES.to(gate.device)[gate, 2 * a + b]


def sum_digits(total: Tensor, digits: int) -> Tensor:
    """Class ids of ``total [B]`` written most-significant digit first, then class 10 ("no digit"): ``[B, digits]``."""
    length = torch.where(total > 0, torch.floor(torch.log10(total.clamp_min(1).double())).long() + 1, torch.ones_like(total))
    position = torch.arange(digits, device=total.device)  # [D]
    power = (length.unsqueeze(1) - 1 - position).clamp_min(0)  # [B, D]: 10^power is the place of digit d
    digit = torch.div(total.unsqueeze(1), 10**power, rounding_mode="floor") % 10
    return torch.where(position < length.unsqueeze(1), digit, torch.full_like(digit, 10))


@register(kind="task")
class ParityTask(SequenceTask):
    """Parity (Graves 2016, 3.1): is the number of +1 entries of a vector odd? One input step, one output bit.

    Each example sets ``n`` entries (uniform in ``[min_entries, max_entries]``, at random positions) to
    +1 or -1 at random, the rest 0; the target is 1 when the number of +1 entries is odd. I = S, O = 1,
    T = 1, loss ``bce``; a test set per entry count (``n64``).

    Args:
        size: S, the vector size (the paper: 64).
        min_entries: fewest non-zero entries (the paper: 1).
        max_entries: most non-zero entries (the paper: 64), at most ``size``.
        test_entries: one test set per count of non-zero entries (named ``n{count}``).
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.
    """

    difficulty = (Difficulty("entries", tag="n", tests="test_entries", at_most="size"),)

    def __init__(self, size: int = 64, min_entries: int = 1, max_entries: int = 64,
                 test_entries: list[int] = [16, 32, 64],  # noqa: B006  (copied, never mutated)
                 batch_size: int = 128, train_batches: int = 1000, val_batches: int = 8, test_batches: int = 8,
                 seed: int = 0) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        check_at_least("ParityTask", "size", size, 1)
        self.size = size
        self.set_difficulty(min_entries=min_entries, max_entries=max_entries, test_entries=test_entries)
        self.input_size, self.output_size = size, 1

    def generate(self, generator: torch.Generator, batch_size: int, min_entries: int = 1, max_entries: int = 64) -> Batch:
        """``input [B, 1, S]`` of -1/0/+1, ``target [B, 1, 1]`` the parity of the +1 entries."""
        B, S = batch_size, self.size
        count = torch.randint(min_entries, max_entries + 1, (B, 1), generator=generator)  # n per example
        rank = torch.rand(B, S, generator=generator).argsort(dim=1).argsort(dim=1)  # a random permutation's ranks
        chosen = rank < count  # [B, S]: n random positions
        sign = torch.randint(0, 2, (B, S), generator=generator) * 2 - 1  # +1 or -1
        x = torch.where(chosen, sign, torch.zeros_like(sign)).float()
        parity = ((x > 0).sum(dim=1) % 2).float()  # [B]
        return {"input": x.unsqueeze(1), "target": parity.view(B, 1, 1), "mask": torch.ones(B, 1)}


@register(kind="task")
class LogicTask(SequenceTask):
    """Logic (Graves 2016, 3.2): apply a chain of binary gates to two bits; a sequence of such chains.

    Each input vector (I = 102) holds two bits b0, b1 and 10 chunks of 10: the first G chunks (G uniform
    in ``[min_gates, max_gates]`` per vector) one-hot one of the 10 gates of :data:`GATES`, the others 0.
    The gates apply recursively, ``b_{n+1} = g_n(b_{n-1}, b_n)`` (n = 1 ... G), and the target (O = 1) is
    the last, ``b_{G+1}``. In a sequence of L vectors (L uniform in ``[min_length, max_length]`` per batch)
    the input b0 is given on the first vector only; for every later one b0 is the previous vector's target
    (its channel is 0), so the chains form one recurrence. Every step is scored (loss ``bce``); a sequence
    is right when every output is.

    Args:
        min_length: fewest vectors per sequence (the paper: 1).
        max_length: most vectors per sequence (the paper: 10).
        min_gates: fewest gates per vector (the paper: 1).
        max_gates: most gates per vector (the paper: 10), at most 10.
        test_lengths: one test set per sequence length (named ``len{L}``; every vector with ``max_gates`` gates ranges).
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.
    """

    chunks = 10  # the most gates per vector, and the width of each gate's one-hot chunk
    difficulty = (
        Difficulty("length", tag="len", tests="test_lengths"),
        Difficulty("gates", tag="g", at_most="chunks"),
    )

    def __init__(self, min_length: int = 1, max_length: int = 10, min_gates: int = 1, max_gates: int = 10,
                 test_lengths: list[int] = [10],  # noqa: B006  (copied, never mutated)
                 batch_size: int = 16, train_batches: int = 1000, val_batches: int = 8, test_batches: int = 8,
                 seed: int = 0) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        self.set_difficulty(min_length=min_length, max_length=max_length, min_gates=min_gates, max_gates=max_gates,
                            test_lengths=test_lengths)
        self.input_size, self.output_size = 2 + self.chunks * len(GATES), 1

    def generate(self, generator: torch.Generator, batch_size: int, min_length: int = 1, max_length: int = 10,
                 min_gates: int = 1, max_gates: int = 10) -> Batch:
        """``input [B, L, 102]``, ``target [B, L, 1]``: b_{G+1} of each vector's chain."""
        B, K = batch_size, self.chunks
        L = int(torch.randint(min_length, max_length + 1, (1,), generator=generator))
        gates = torch.randint(min_gates, max_gates + 1, (B, L), generator=generator)  # G per vector
        ids = torch.randint(0, len(GATES), (B, L, K), generator=generator)  # gate ids (only the first G used)
        bits = torch.randint(0, 2, (B, L, 2), generator=generator)  # b0 (first vector only), b1
        x = torch.zeros(B, L, 2 + K * len(GATES))
        x[:, 0, 0] = bits[:, 0, 0].float()
        x[:, :, 1] = bits[:, :, 1].float()
        used = torch.arange(K) < gates.unsqueeze(-1)  # [B, L, K]
        one_hot = torch.nn.functional.one_hot(ids, len(GATES)).float() * used.unsqueeze(-1)  # [B, L, K, 10]
        x[:, :, 2:] = one_hot.flatten(2)  # [B, L, K * 10]
        target = torch.zeros(B, L, 1)
        previous = bits[:, 0, 0]  # b0 of the first vector
        for step in range(L):  # vectors and gates, vectorised over the batch
            a, b = previous, bits[:, step, 1]
            for n in range(K):
                c = logic_gates(ids[:, step, n], a, b)  # b_{n+1} = g_n(b_{n-1}, b_n)
                active = used[:, step, n]
                a, b = torch.where(active, b, a), torch.where(active, c, b)
            target[:, step, 0] = b.float()
            previous = b
        return {"input": x, "target": target, "mask": torch.ones(B, L)}


@register(kind="task")
class AdditionTask(SequenceTask):
    """Addition (Graves 2016, 3.3): read a number per step and write the running sum, as D = 6 digit classes.

    A sequence holds L numbers (L uniform in ``[min_length, max_length]`` per batch), each of k digits
    (k uniform in ``[min_digits, max_digits]`` per number; the leading digit is never 0). Step t gives
    number t as 5 one-hot digit chunks, most significant first (I = 50; chunks past k are 0); its
    target is the sum of numbers 1 ... t written most significant first in 6 digits, each a class of 11
    (0-9, and 10 for "no digit" after the last one): ``target [B, T, 6]`` class ids, logits
    ``[B, T, 66]`` (O = 6 x 11, digit d's classes at ``11 d ... 11 d + 10``), loss ``ce`` per digit.
    Every step is scored; a sequence is right when every digit of every step is.

    Args:
        min_length: fewest numbers per sequence (the paper: 1).
        max_length: most numbers per sequence (the paper: 5), at most 10 (so the sum fits 6 digits).
        min_digits: fewest digits per number (the paper: 1).
        max_digits: most digits per number (the paper: 5), at most 5.
        test_lengths: one test set per sequence length (named ``len{L}``); None keeps the training
            range in every test set.
        test_digits: digits per number of each test set (named ``d{k}``, every number of the set has k
            digits): ponder time against the number of digits. Paired entry by entry with
            ``test_lengths`` when both are given (``len5_d1``); None (the default) keeps the training
            range of digits in every test set.
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.
    """

    loss = "ce"
    digit_limit, length_limit, out_digits, classes = 5, 10, 6, 11
    difficulty = (
        Difficulty("length", tag="len", tests="test_lengths", at_most="length_limit"),
        Difficulty("digits", tag="d", tests="test_digits", at_most="digit_limit"),
    )

    def __init__(self, min_length: int = 1, max_length: int = 5, min_digits: int = 1, max_digits: int = 5,
                 test_lengths: list[int] | None = [5],  # noqa: B006  (copied, never mutated)
                 test_digits: list[int] | None = None,
                 batch_size: int = 32, train_batches: int = 1000, val_batches: int = 8, test_batches: int = 8,
                 seed: int = 0) -> None:
        super().__init__(batch_size, train_batches, val_batches, test_batches, seed)
        self.set_difficulty(min_length=min_length, max_length=max_length, min_digits=min_digits, max_digits=max_digits,
                            test_lengths=test_lengths, test_digits=test_digits)
        self.input_size, self.output_size = 10 * self.digit_limit, self.out_digits * self.classes

    def generate(self, generator: torch.Generator, batch_size: int, min_length: int = 1, max_length: int = 5,
                 min_digits: int = 1, max_digits: int = 5) -> Batch:
        """``input [B, L, 50]``, ``target [B, L, 6]`` class ids of the running sums."""
        B, K = batch_size, self.digit_limit
        L = int(torch.randint(min_length, max_length + 1, (1,), generator=generator))
        k = torch.randint(min_digits, max_digits + 1, (B, L, 1), generator=generator)  # digits per number
        digits = torch.randint(0, 10, (B, L, K), generator=generator)
        lead = torch.randint(1, 10, (B, L), generator=generator)
        digits[:, :, 0] = torch.where(k[..., 0] > 1, lead, digits[:, :, 0])  # no leading zero
        present = torch.arange(K) < k  # [B, L, K]
        x = torch.nn.functional.one_hot(digits, 10).float() * present.unsqueeze(-1)  # [B, L, K, 10]
        place = (k - 1 - torch.arange(K)).clamp_min(0)  # [B, L, K]: the power of ten of each digit
        numbers = (digits * 10**place * present).sum(dim=-1)  # [B, L]
        running = numbers.cumsum(dim=1)  # [B, L]
        target = sum_digits(running.flatten(), self.out_digits).view(B, L, self.out_digits)
        return {"input": x.flatten(2), "target": target, "mask": torch.ones(B, L)}
