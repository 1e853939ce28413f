"""Learning benchmark: DMN+ on one bAbI task (10k training questions), test error at the best validation figure.

Trains the model of ``configs/dmn/babi_10k_task.yaml`` (DMNPlus: d = 80, 3 passes, attention GRU,
dropout 0.1, Adam 1e-3, batch 100) with a plain PyTorch loop, by default with the paper's L2 (Adam's weight
decay 1e-3) and selection on the validation loss; ``--weight-decay 0 --select error`` is what the preset does
(it drops the L2, with which task 17 does not fit its training set). A plain loop (no Lightning:
the same model, data module and loss as ``QASystem``, less overhead). After every epoch it measures
the validation loss and error (10% of the training stories, held out by ``BabiDataModule``); it keeps
the weights of the best validation loss (or error, ``--select error``) and stops after ``--patience`` epochs
without improvement or at ``--max-epochs``. Then it measures the test error of the kept weights.

    OMP_NUM_THREADS=1 python benchmarks/run_dmn_babi.py --data-dir /path/to/tasks_1-20_v1-2/en-10k --task 1 --seed 0

Writes ``benchmarks/out/dmn_babi_task{T}_seed{S}.json`` (settings, per-epoch history, seconds per
epoch, best epoch, validation and test error in percent) and prints a one-line summary. The 10k
training set of task 3 is missing from some copies of the data; the paper kept the last 800
sentences of task 3's stories (``--memory-size 800``) and 100 for the others.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time
from pathlib import Path

import torch

from mannkit.core.registry import load_plugins
from mannkit.systems.qa import answer_loss
from mannkit.tasks import BabiDataModule

OUT = Path(__file__).parent / "out"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="folder of qaN_*_{train,test}.txt files, e.g. .../en-10k")
    p.add_argument("--task", type=int, default=1, help="bAbI task number (1-20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and of the batch order")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the validation split (kept fixed across seeds)")
    p.add_argument("--max-epochs", type=int, default=256)
    p.add_argument("--patience", type=int, default=20, help="stop after this many epochs without a better validation figure")
    p.add_argument("--select", choices=("loss", "error"), default="loss",
                   help="the validation figure that picks the kept weights and counts the patience: the loss (default) "
                        "or the error (a model that grows confident on the questions it misses can get worse in loss "
                        "while it gets better in error)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-3, help="Adam's weight_decay (the paper's L2)")
    p.add_argument("--dim", type=int, default=80, help="d, the width of every vector")
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.1, help="on the sentence encodings and on the answer module")
    p.add_argument("--memory-size", type=int, default=None, help="sentences kept per story (default 100, 800 for task 3)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    return p.parse_args(argv)


def build_model(args: argparse.Namespace, data: BabiDataModule) -> torch.nn.Module:
    load_plugins()
    from mannkit_dmn import DMNPlus, FactMemory

    model = DMNPlus(FactMemory(word_size=args.dim, dropout=args.dropout), passes=args.passes, answer_dropout=args.dropout)
    model.bind(data.vocab_size, data.answer_size, data.max_sentences, data.sentence_length, data.question_length)
    return model


def evaluate(model: torch.nn.Module, loader) -> tuple[float, float]:  # noqa: ANN001
    """Mean loss over scorable questions and error (%) over all questions (an unseen answer counts as wrong)."""
    model.eval()
    loss_sum, scorable, wrong, total = 0.0, 0, 0, 0
    with torch.no_grad():
        for batch in loader:
            logits = model(batch["story"], batch["question"]).logits
            answer = batch["answer"]
            n = int((answer >= 0).sum())
            if n:
                loss_sum += answer_loss(logits, answer).item() * n
            scorable += n
            wrong += int((logits.argmax(-1) != answer).sum())
            total += answer.numel()
    model.train()
    return loss_sum / max(scorable, 1), 100.0 * wrong / max(total, 1)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    memory_size = args.memory_size or (800 if args.task == 3 else 100)
    data = BabiDataModule(args.data_dir, tasks=args.task, memory_size=memory_size, batch_size=args.batch_size,
                          val_fraction=0.1, seed=args.split_seed)
    data.setup("test")
    torch.manual_seed(args.seed)
    model = build_model(args, data)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    train, val, test = data.train_dataloader(), data.val_dataloader(), data.test_dataloader()
    history, best, best_state, since_best = [], None, None, 0
    started = time.perf_counter()
    for epoch in range(1, args.max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        train_loss, batches, nonfinite = 0.0, 0, 0
        for batch in train:
            loss = answer_loss(model(batch["story"], batch["question"]).logits, batch["answer"])
            if not torch.isfinite(loss):
                nonfinite += 1
                continue
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_loss, batches = train_loss + loss.item(), batches + 1
        train_seconds = time.perf_counter() - t0
        val_loss, val_error = evaluate(model, val)
        row = {"epoch": epoch, "train_loss": train_loss / max(batches, 1), "val_loss": val_loss, "val_error": val_error,
               "train_seconds": round(train_seconds, 2), "epoch_seconds": round(time.perf_counter() - t0, 2),
               "nonfinite_batches": nonfinite}
        history.append(row)
        print(json.dumps(row), flush=True)
        key = "val_loss" if args.select == "loss" else "val_error"
        if best is None or row[key] < best[key]:
            best, best_state, since_best = row, copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
            if since_best >= args.patience:
                break
    model.load_state_dict(best_state)
    test_loss, test_error = evaluate(model, test)
    epochs = len(history)
    return {
        "model": "DMNPlus",
        "task": args.task,
        "task_name": data.task_names[args.task],
        "seed": args.seed,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "memory_size": memory_size,
        "sizes": {"V": data.vocab_size, "A": data.answer_size, "N": data.max_sentences, "L": data.sentence_length,
                  "Q": data.question_length, "train": len(data.split("train")), "val": len(data.split("val")),
                  "test": len(data.split("test"))},
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": epochs,
        "stopped_early": epochs < args.max_epochs,
        "best_epoch": best["epoch"],
        "val_error_percent": best["val_error"],
        "test_loss": test_loss,
        "test_error_percent": test_error,
        "seconds_per_epoch": round(sum(r["epoch_seconds"] for r in history) / epochs, 2),
        "total_seconds": round(time.perf_counter() - started, 1),
        "nonfinite_batches": sum(r["nonfinite_batches"] for r in history),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "history": history,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"dmn_babi_task{args.task}_seed{args.seed}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"DMN+ task {result['task']} ({result['task_name']}) seed {result['seed']}: test error "
        f"{result['test_error_percent']:.1f}% (val {result['val_error_percent']:.1f}%, best epoch {result['best_epoch']} "
        f"of {result['epochs']}), {result['seconds_per_epoch']:.1f} s/epoch on {result['threads']} thread(s); wrote {path}"
    )
    if not math.isfinite(result["test_loss"]):
        raise SystemExit("the test loss is not finite")


if __name__ == "__main__":
    main()
