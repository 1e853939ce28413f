"""Cost of an ACT training step against the bare cell run for the same number of steps.

ACT with ``max_ponder = n`` and a halting bias of -30 halts every example at exactly n ponder steps
(forced, with its remainder), so its mean ponder count is n. The bare cell (bound to the same
I + 1 inputs and O + 1 outputs) is unrolled over the same input repeated n times per input step
(T n steps, first-step flag set as ACT sets it). A training step is forward, BCE loss (plus the
ponder cost for ACT), backward and an Adam step. Each configuration is timed ``--repeats`` times,
ACT and bare interleaved, after warm-up, in CPU time of the (single) thread (``time.thread_time``:
on a shared machine wall time also counts the time other processes hold the core); the medians are
reported and the ratio ACT / bare. Goal: under 1.5x.

    OMP_NUM_THREADS=1 python benchmarks/bench_act_step.py --ponder 1 2 4 8 --repeats 15
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mannkit.cell import MemoryCell
from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, RNNController, WriteHead
from mannkit.nn import ControllerCell
from mannkit_act import ACT

CELLS = {
    # name: (build, B, T, I, O)
    "rnn128_parity": (lambda: ControllerCell(RNNController(128)), 128, 1, 64, 1),
    "lstm100_ntm128x20": (
        lambda: MemoryCell(LSTMController(100), MatrixMemory(128, 20),
                           [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())]),
        16, 10, 9, 8,
    ),
}


def bare_forward(cell, x: torch.Tensor, n: int) -> torch.Tensor:
    """The cell unrolled n times per input step on ``[x_t, flag]``; logits ``[B, T, O]`` (the last of each n)."""
    B, T, _ = x.shape
    state = cell.initial_state(B, x.device, x.dtype)
    first = torch.cat([x, x.new_ones(B, T, 1)], dim=-1)
    later = torch.cat([x, x.new_zeros(B, T, 1)], dim=-1)
    outputs = []
    for t in range(T):
        for k in range(n):
            y, state, _ = cell.step(first[:, t] if k == 0 else later[:, t], state)
        outputs.append(y[:, :-1])
    return torch.stack(outputs, dim=1)


def time_steps(step, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        step()
        times.append(time.thread_time() - start)
    return times


def bench(name: str, n: int, repeats: int) -> tuple[float, float]:
    build, B, T, I, O = CELLS[name]
    torch.manual_seed(0)
    act = ACT(build(), max_ponder=n, halting_bias_init=-30.0, tau=1e-3)
    act.bind(I, O)
    bare = build()
    bare.bind(I + 1, O + 1)
    x = torch.randn(B, T, I)
    target = torch.randint(0, 2, (B, T, O)).float()
    opt_act, opt_bare = torch.optim.Adam(act.parameters()), torch.optim.Adam(bare.parameters())

    def act_step() -> None:
        out = act(x)
        loss = F.binary_cross_entropy_with_logits(out.logits, target) + out.losses["ponder"]
        opt_act.zero_grad()
        loss.backward()
        opt_act.step()
        assert out.stats["ponder_max"] == n

    def bare_step() -> None:
        loss = F.binary_cross_entropy_with_logits(bare_forward(bare, x, n), target)
        opt_bare.zero_grad()
        loss.backward()
        opt_bare.step()

    for _ in range(3):  # warm-up
        act_step()
        bare_step()
    a, b = [], []
    for _ in range(repeats):  # interleaved, so a busy moment on the shared machine hits both
        a += time_steps(act_step, 1)
        b += time_steps(bare_step, 1)
    return statistics.median(a), statistics.median(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=list(CELLS))
    parser.add_argument("--ponder", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median CPU time of {args.repeats}")
    print("| cell (B, T) | ponder steps n | ACT step (ms CPU) | bare cell, T n steps (ms CPU) | ACT / bare |")
    print("|---|---|---|---|---|")
    for name in args.cells:
        _, B, T, _, _ = CELLS[name]
        for n in args.ponder:
            a, b = bench(name, n, args.repeats)
            print(f"| {name} ({B}, {T}) | {n} | {a * 1e3:.1f} | {b * 1e3:.1f} | {a / b:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
