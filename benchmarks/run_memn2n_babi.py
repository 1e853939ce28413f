"""Learning benchmark: MemN2N on bAbI (all 20 tasks jointly, or one task), per-task test error.

Trains ``MemN2N`` (the model of ``configs/memn2n/``) on ``BabiDataModule``'s splits with a plain
PyTorch loop (no Lightning: the same model and data classes, less overhead per step), following
Sukhbaatar et al. (2015, sec. 4.2): SGD on the cost *summed* over a batch of 32, gradients of norm
above 40 scaled down to 40 (``--clip each``, the default: each weight's gradient on its own, by its
largest singular value, as the original code's ``nn/Weight.m``; ``--clip joint``: all gradients together,
by their 2-norm, as Lightning's ``gradient_clip_val``), weights from N(0, 0.1), 10% of the training stories held out for
validation, the last 50 sentences of a story, K = 3 hops, adjacent tying, PE, TE and RN.

Linear start (``--linear-start``, on by default): a first phase without the softmax of the hops at
``--ls-lr`` (0.005) for ``--ls-epochs`` epochs, as the original code (``MemN2N-babi-matlab``,
``train_linear_start.m``) does. The paper writes "until the validation loss stopped decreasing";
``--ls-patience P`` reads it so: linear start also ends after P + 1 epochs in a row without a lower
validation loss (on task 2 of the 1k set, seed 0, a patience of 0 ended it after 3 epochs and gave 28.0%
test error, 3 gave 10.9%, the fixed 20 epochs 10.0%). Then the softmax is inserted and the main schedule
runs in full: ``--epochs`` epochs from ``--lr``, halved every ``--anneal-every`` epochs. Defaults:
joint (``--tasks all``) d = 50, 60 epochs halved every 15, at most 30 linear epochs; one task d = 20,
100 epochs halved every 25, at most 20 linear epochs. The learning rate after linear start is
``--lr`` (default: ``--ls-lr`` when linear start is on, as the original code, else 0.01).

    OMP_NUM_THREADS=1 python benchmarks/run_memn2n_babi.py --data-dir /work/shared/data/babi/tasks_1-20_v1-2/en --tasks all --seed 0

Writes ``benchmarks/out/memn2n_babi_{tasks}_seed{S}.json`` (settings, per-epoch history, seconds per
epoch, per-task test and training errors in percent, mean error, failed tasks) and prints a summary.
The paper reports, per setting, the run of 10 with the lowest training error: run seeds and pick
(``benchmarks/memn2n_seeds.py`` does it through ``mannkit fit`` / ``mannkit test``).

The same seed trains the same weights as ``mannkit fit --config configs/memn2n/babi_1k_joint.yaml
--seed_everything S`` (issue 15; tests/plugins/memn2n/test_memn2n_preset_matches_benchmark.py): the batches
come from the data module's shuffled loader, as in Lightning. Since then the batch order differs from the
runs of 2026-11-26 in benchmarks/RESULTS.md (they drew it with ``torch.randperm``); the initial weights do not.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mannkit.callbacks.clip_each import ClipEachGradient
from mannkit.core.registry import load_plugins
from mannkit.tasks import BabiDataModule

OUT = Path(__file__).parent / "out"
FAILED = 5.0  # a task with more than 5% test error fails (the paper's threshold)


def _patience(text: str) -> int | None:
    """``--ls-patience``: a count of 0 or more, or ``none`` (no early end)."""
    if text.strip().lower() == "none":
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, or none; got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="folder of qaN_*_{train,test}.txt files, e.g. .../en")
    p.add_argument("--tasks", default="all", help="'all' (joint training) or task numbers, e.g. 1 or 1,2,3")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the batch order and the noise")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the validation split (kept fixed across seeds)")
    p.add_argument("--epochs", type=int, default=None, help="main-phase epochs (default 60 joint, 100 per task)")
    p.add_argument("--anneal-every", type=int, default=None, help="halve the rate every this many epochs (15 / 25)")
    p.add_argument("--lr", type=float, default=None, help="SGD rate on the summed cost after linear start")
    p.add_argument("--linear-start", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--ls-lr", type=float, default=0.005, help="SGD rate during linear start")
    p.add_argument("--ls-epochs", type=int, default=None, help="at most this many linear epochs (30 joint, 20 per task)")
    p.add_argument("--ls-patience", type=_patience, default=None,
                   help="end linear start early after this many + 1 epochs in a row without a lower validation loss "
                        "(0: the first epoch without progress ends it); default none: always --ls-epochs, as the original code")
    p.add_argument("--dim", type=int, default=None, help="d (default 50 joint, 20 per task)")
    p.add_argument("--hops", type=int, default=3)
    p.add_argument("--addressing", default=None,
                   help="the hops' attention, e.g. PerformerAddressing:features=64 or LinformerAddressing:projected=16 "
                        "(default: MemN2N's dot product; one without scores() needs --no-linear-start)")
    p.add_argument("--tying", choices=("adjacent", "layerwise"), default="adjacent")
    p.add_argument("--position-encoding", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--position-form", choices=("code", "paper"), default="code",
                   help="the position encoding's form: the original code's (default) or the one the paper prints")
    p.add_argument("--temporal-encoding", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--random-noise", type=float, default=0.1)
    p.add_argument("--memory-size", type=int, default=50)
    p.add_argument("--attend-empty-slots", action=argparse.BooleanOptionalAction, default=None,
                   help="let the hops attend to the empty memory slots too (score 0), as the original code's softmax "
                        "(default: on jointly, as the joint preset; off per task)")
    p.add_argument("--answer-softmax", choices=("classes", "vocabulary"), default="classes",
                   help="the answer softmax over the answer classes (default) or over the whole vocabulary, as the original code's")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-grad-norm", type=float, default=40.0, help="of the summed cost's gradient")
    p.add_argument("--clip", choices=("each", "joint"), default="each",
                   help="clip each weight's gradient alone by its spectral norm (the original code, the presets' "
                        "ClipEachGradient), or all together by their 2-norm (gradient_clip_val)")
    p.add_argument("--position-length", choices=("own", "fixed"), default="own",
                   help="J of the position encoding: each sentence's own length (default), or one J for every sentence and "
                        "question, the longest sentence or question of the data plus one, as the original code")
    p.add_argument("--time-scale", action=argparse.BooleanOptionalAction, default=False,
                   help="scale the time vectors by the position weights of position J (the original code's time word sits "
                        "there); needs --position-length fixed")
    p.add_argument("--answer-extra", action=argparse.BooleanOptionalAction, default=False,
                   help="with --answer-softmax vocabulary: also score the last hop's time vectors and a nil word (score 0), "
                        "as the original code's output layer over its whole lookup table")
    p.add_argument("--drop-punctuation", action=argparse.BooleanOptionalAction, default=False,
                   help="remove the '.' and '?' tokens from sentences and questions (the original code strips them); with "
                        "--answer-softmax vocabulary, those tokens and <unk> are not scored either")
    p.add_argument("--clip-tables", choices=("apart", "together"), default="apart",
                   help="--clip each: each encoder's word and time tables clipped apart (default) or as one matrix, as the "
                        "original code's single lookup table")
    p.add_argument("--anneal-early", action=argparse.BooleanOptionalAction, default=False,
                   help="halve the rate at the start of the --anneal-every'th epoch (the original code: epochs 15, 30, ...) "
                        "instead of after it (16, 31, ...)")
    p.add_argument("--sample", choices=("shuffle", "replacement"), default="shuffle",
                   help="batches: a shuffled pass (default) or floor(n / batch) batches drawn with replacement, as the original code")
    p.add_argument("--nil-gradient", action=argparse.BooleanOptionalAction, default=False,
                   help="count the gradient of the original code's nil word (every padding position of a sentence, question or "
                        "empty slot, weighted by its position encoding) in each table's clip norm, then drop it, as the code "
                        "does; needs --position-length fixed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    args.tasks = "all" if args.tasks.strip().lower() == "all" else [int(t) for t in args.tasks.split(",")]
    joint = args.tasks == "all" or len(args.tasks) > 1
    defaults = {"epochs": (60, 100), "anneal_every": (15, 25), "ls_epochs": (30, 20), "dim": (50, 20),
                "attend_empty_slots": (True, False)}
    for name, (if_joint, per_task) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, if_joint if joint else per_task)
    if args.lr is None:
        args.lr = args.ls_lr if args.linear_start else 0.01
    return args


def _addressing(spec: str | None):  # noqa: ANN202
    """``None`` (the model's default dot product) or ``Name`` / ``Name:key=value,key=value`` of a registered addressing."""
    if not spec:
        return None
    from mannkit.core.config import instantiate

    name, _, options = spec.partition(":")
    init_args = {k: json.loads(v) for k, v in (item.split("=", 1) for item in options.split(",") if item)}
    return instantiate({"class_path": name, "init_args": init_args}, "--addressing")


def build_model(args: argparse.Namespace, data: BabiDataModule) -> torch.nn.Module:
    load_plugins()
    from mannkit.tasks.babi import answer_word_ids
    from mannkit_memn2n import MemN2N

    position = args.position_form if args.position_encoding else False  # "code", "paper" or no position encoding
    length = "data" if args.position_length == "fixed" else None  # the longest sentence or question plus one
    model = MemN2N(embedding_dim=args.dim, hops=args.hops, tying=args.tying, position_encoding=position,
                   temporal_encoding=args.temporal_encoding, random_noise=args.random_noise,
                   linear_start=args.linear_start, memory_size=args.memory_size, attend_empty_slots=args.attend_empty_slots,
                   answer_softmax=args.answer_softmax, addressing=_addressing(args.addressing),
                   position_length=length, time_scale=args.time_scale, answer_extra=args.answer_extra,
                   nil_gradient=args.nil_gradient)
    model.bind(data.vocab_size, data.answer_size, data.max_sentences, data.sentence_length, data.question_length,
               answer_words=answer_word_ids(data.vocab, data.answers))
    if args.drop_punctuation and model.other_words is not None:  # <unk> is no word of the code's vocabulary
        gone = torch.tensor([data.vocab.index(w) for w in ("<unk>",) if w in data.vocab])
        model.other_words = model.other_words[~torch.isin(model.other_words, gone)]
    return model


class ReplacementBatches:
    """floor(n / B) batches per epoch, each question drawn uniformly with replacement (the original code's ``train``)."""

    def __init__(self, dataset, batch_size: int) -> None:  # noqa: ANN001
        self.dataset, self.batch_size = dataset, batch_size
        self.generator = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def __iter__(self):  # noqa: ANN204
        for _ in range(len(self)):
            yield self.dataset.__getitems__(torch.randint(len(self.dataset), (self.batch_size,), generator=self.generator).tolist())


def batches(split, batch_size: int, order: torch.Tensor | None = None):  # noqa: ANN001, ANN201
    """Batches of the split (in ``order``, or in file order) as dicts of ``[B, ...]`` tensors."""
    index = torch.arange(len(split)) if order is None else order
    for start in range(0, len(index), batch_size):
        yield split.__getitems__(index[start:start + batch_size].tolist())


def evaluate(model: torch.nn.Module, split, batch_size: int = 256) -> dict:  # noqa: ANN001
    """Mean loss over scorable questions, error (%) over all questions, and per task (an unseen answer is wrong)."""
    model.eval()
    loss_sum, scorable, wrong, total = 0.0, 0, {}, {}
    with torch.no_grad():
        for batch in batches(split, batch_size):
            logits = model(batch["story"], batch["question"]).scores()  # [B, A] (+ the other words' column)
            answer, task = batch["answer"], batch["task"]
            keep = answer >= 0
            if keep.any():
                loss_sum += F.cross_entropy(logits[keep], answer[keep], reduction="sum").item()
            scorable += int(keep.sum())
            miss = logits.argmax(-1) != answer
            for t in task.unique().tolist():
                here = task == t
                wrong[t] = wrong.get(t, 0) + int(miss[here].sum())
                total[t] = total.get(t, 0) + int(here.sum())
    model.train()
    per_task = {t: 100.0 * wrong[t] / total[t] for t in sorted(total)}
    return {"loss": loss_sum / max(scorable, 1), "error": 100.0 * sum(wrong.values()) / max(sum(total.values()), 1),
            "per_task": per_task}


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader, args: argparse.Namespace) -> tuple[float, int]:  # noqa: ANN001
    """One pass over the shuffled training questions: SGD on the summed cost, gradient norms clipped (``args.clip``).

    ``loader`` is ``data.train_dataloader()``, made once, as ``mannkit fit`` makes it, so that the same seed
    gives the same batch order (the loader shuffles with a generator of its own, seeded when it is made).
    """
    cost, nonfinite = 0.0, 0
    # --clip each: each weight alone, by its largest singular value (the original code); with --clip-tables together an
    # encoder's word and time tables as one matrix [V + M, D], as the code's one table (the stacks found once an epoch)
    clip = ClipEachGradient(args.max_grad_norm, norm="spectral", together=["words", "time"] if args.clip_tables == "together" else None)
    stacks = clip.groups(model) if clip.together else []
    for batch in loader:
        loss = F.cross_entropy(model(batch["story"], batch["question"]).scores(), batch["answer"], reduction="sum")
        if not torch.isfinite(loss):
            nonfinite += 1
            continue
        optimizer.zero_grad()
        loss.backward()
        if args.clip == "each":
            clip.clip(model.parameters(), stacks)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        if args.nil_gradient:  # the padding word's gradient only counted in the clip; the word stays zero
            for module in model.modules():
                if hasattr(module, "nil_tails") and module.words.grad is not None:
                    module.words.grad[0] = 0
        optimizer.step()
        cost += loss.item()
    return cost / len(loader.dataset), nonfinite


def train(args: argparse.Namespace) -> tuple[torch.nn.Module, BabiDataModule, list[dict], int]:
    """Build the data and the model from ``args.seed`` and train them; returns (model, data, history, linear epochs).

    The seed is set before the data module and the model are made, as ``mannkit fit --seed_everything S``
    does, so the preset with ``LinearStartSchedule`` and ``loss_reduction: sum`` trains the same weights.
    """
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = BabiDataModule(args.data_dir, tasks=args.tasks, memory_size=args.memory_size, batch_size=args.batch_size,
                          val_fraction=0.1, seed=args.split_seed, drop_punctuation=args.drop_punctuation)
    data.setup("fit")
    val = data.split("val")
    model = build_model(args, data)
    if args.sample == "replacement":
        loader = ReplacementBatches(data.split("train"), args.batch_size)
    else:
        loader = data.train_dataloader()  # after the weights, as in Lightning (it takes one seed from the global generator)
    history: list[dict] = []

    def epoch(phase: str, optimizer: torch.optim.Optimizer) -> dict:
        t0 = time.perf_counter()
        model.train()
        cost, nonfinite = train_epoch(model, optimizer, loader, args)
        train_seconds = time.perf_counter() - t0
        checked = evaluate(model, val)
        row = {"epoch": len(history) + 1, "phase": phase, "lr": optimizer.param_groups[0]["lr"], "train_cost": cost,
               "val_loss": checked["loss"], "val_error": checked["error"], "train_seconds": round(train_seconds, 2),
               "epoch_seconds": round(time.perf_counter() - t0, 2), "nonfinite_batches": nonfinite}
        history.append(row)
        print(json.dumps(row), flush=True)
        return row

    ls_epochs_run = 0
    if args.linear_start:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.ls_lr)
        best, stalled = math.inf, 0
        for _ in range(args.ls_epochs):
            row = epoch("linear", optimizer)
            ls_epochs_run += 1
            if row["val_loss"] < best:
                best, stalled = row["val_loss"], 0
            else:
                stalled += 1
                if args.ls_patience is not None and stalled > args.ls_patience:  # the validation loss stopped falling: insert the softmax
                    break
        model.set_linear_start(False)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    if args.anneal_early:  # halved at the start of epochs E, 2E, ... (1-based), as the original code's (ep + 1) % E == 0
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 0.5 ** ((e + 1) // args.anneal_every))
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.anneal_every, gamma=0.5)
    for _ in range(args.epochs):
        epoch("softmax", optimizer)
        scheduler.step()
    return model, data, history, ls_epochs_run


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    model, data, history, ls_epochs_run = train(args)
    trainset, val, test = data.split("train"), data.split("val"), data.split("test")
    tested, trained = evaluate(model, test), evaluate(model, trainset)
    errors = tested["per_task"]
    epochs = len(history)
    return {
        "model": "MemN2N",
        "tasks": data.tasks,
        "task_names": data.task_names,
        "seed": args.seed,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "sizes": {"V": data.vocab_size, "A": data.answer_size, "N": data.max_sentences, "L": data.sentence_length,
                  "Q": data.question_length, "train": len(trainset), "val": len(val), "test": len(test)},
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": epochs,
        "linear_epochs": ls_epochs_run,
        "test_error_percent": errors,
        "mean_test_error_percent": sum(errors.values()) / len(errors),
        "failed_tasks": sum(e > FAILED for e in errors.values()),
        "train_error_percent": trained["per_task"],
        "mean_train_error_percent": sum(trained["per_task"].values()) / len(trained["per_task"]),
        "final_val_error_percent": history[-1]["val_error"] if history else None,
        "test_loss": tested["loss"],
        "seconds_per_epoch": round(sum(r["epoch_seconds"] for r in history) / max(epochs, 1), 2),
        "train_seconds_per_epoch": round(sum(r["train_seconds"] for r in history) / max(epochs, 1), 2),
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
    name = "joint" if args.tasks == "all" else "task" + "-".join(map(str, args.tasks))
    tag = f"_{args.addressing.split(':')[0]}" if args.addressing else ""
    path = args.out / f"memn2n_babi_{name}{tag}_seed{args.seed}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    table = "  ".join(f"{t}:{e:.1f}" for t, e in result["test_error_percent"].items())
    print(
        f"MemN2N {name} seed {result['seed']}: mean test error {result['mean_test_error_percent']:.1f}% "
        f"({result['failed_tasks']} tasks above {FAILED:g}%; mean training error {result['mean_train_error_percent']:.1f}%), "
        f"{result['epochs']} epochs ({result['linear_epochs']} linear), {result['seconds_per_epoch']:.1f} s/epoch on "
        f"{result['threads']} thread(s); per task: {table}; wrote {path}"
    )
    if not math.isfinite(result["test_loss"]):
        raise SystemExit("the test loss is not finite")


if __name__ == "__main__":
    main()
