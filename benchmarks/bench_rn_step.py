"""Cost of a Relation Network bAbI step: only the slots the batch's stories fill, against all M slots.

``RelationNetworkQA`` keeps the M most recent sentences as objects, and g_theta runs over every
ordered pair. Slots past a story's start are masked out of the sum, so the model computes only the
K <= M most recent slots that some story of the batch fills (K^2 pairs instead of M^2). This times
one forward and backward pass (cross-entropy, no optimizer step) of the preset's model
(``configs/relational/babi_rn.yaml``: E = S = 32, g 4 x 256, f 256-512, M = 20, dropout 0.5) on a
batch of random stories of at most K sentences, both ways:

- ``all M``: the objects of all M slots built by hand (as before the change) and given to the RN;
- ``K only``: the model's own forward.

bAbI 10k's longest story in a batch of 64 (median over batches): 2 sentences for tasks 4 and 17,
5 for 19, 8-11 for tasks 1, 9-13, 15, 16 and 20, 20 (all M) for 2, 5, 7 and 8.
CPU time of the one thread (``time.thread_time``), ``--repeats`` times each, interleaved after one
warm-up; medians and their ratio.

    OMP_NUM_THREADS=1 python benchmarks/bench_rn_step.py --sentences 2 5 10 20 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mannkit_relational import RelationNetworkQA
from mannkit_relational.rn_qa import encode_words, recent_sentences

V, A, N, L, Q, B, M = 40, 10, 50, 7, 4, 64, 20


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sentences", type=int, nargs="+", default=[2, 5, 10, 20], help="K, the longest story of the batch")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = RelationNetworkQA(embedding_dim=32, lstm_size=32, g_layers=[256] * 4, f_layers=[256, 512], memory_size=M, dropout=0.5)
    model.bind(vocab_size=V, answer_size=A, max_sentences=N, sentence_length=L, question_length=Q)
    question, answer = torch.randint(1, V, (B, Q)), torch.randint(0, A, (B,))
    tags = F.one_hot(torch.arange(M), M).float().expand(B, M, M)

    def all_slots(story: torch.Tensor) -> torch.Tensor:
        kept, mask = recent_sentences(story, M)
        objects = torch.cat([encode_words(model.sentence_lstm, model.words, kept), tags], dim=-1)  # [B, M, S + M]
        return model.rn(objects, encode_words(model.question_lstm, model.words, question), mask)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {B}, M = {M}; "
          "median CPU seconds of forward + backward")
    print("| K (longest story) | all M slots | K only | ratio |")
    print("|---:|---:|---:|---:|")
    for k in args.sentences:
        story = torch.randint(1, V, (B, N, L))
        story[:, k:] = 0
        story[1:, max(1, k // 2):] = 0  # one story of k sentences, the others shorter
        times: dict[str, list[float]] = {"all": [], "K": []}
        ways = {"all": lambda: all_slots(story), "K": lambda: model(story, question).logits}
        for r in range(args.repeats + 1):
            for name, forward in ways.items():
                start = time.thread_time()
                F.cross_entropy(forward(), answer).backward()
                if r:  # the first round warms up
                    times[name].append(time.thread_time() - start)
        full, trimmed = statistics.median(times["all"]), statistics.median(times["K"])
        print(f"| {k} | {full:.3f} | {trimmed:.3f} | {trimmed / full:.2f} |")


if __name__ == "__main__":
    main()
