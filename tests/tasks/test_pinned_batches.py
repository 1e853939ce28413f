"""Pinned batches: every built-in generated task yields, seed for seed, the tensors it yielded when this file was written.

A checksum (sha256 of every tensor's key, shape, dtype and bytes) of the first two training batches,
the first validation batch, an example batch and the first batch of each test set is stored below,
computed from the code before the tasks' difficulty was made declarative. A refactor of the tasks
must keep them; a deliberate change of a generator updates the checksum here, in the same commit,
and says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
import torch

from mannkit.tasks import (
    AdditionTask,
    AssociativeRecallTask,
    BigramFlipTask,
    CopyTask,
    CopyTransduction,
    DyckTask,
    DynamicNGramsTask,
    FamilyTreeTask,
    GenderConjugationTask,
    GraphTraversalTask,
    LogicTask,
    MultiTask,
    NthFarthestTask,
    ParityTask,
    PrioritySortTask,
    RepeatCopyTask,
    ReversalTask,
    SequenceTask,
    ShortestPathTask,
    SortTask,
    SVOtoSOVTask,
)

SIZES = {"batch_size": 3, "train_batches": 2, "val_batches": 1, "test_batches": 1, "seed": 7}

TASKS: dict[str, Callable[[], SequenceTask]] = {
    "copy": lambda: CopyTask(**SIZES),
    "repeat_copy": lambda: RepeatCopyTask(**SIZES),
    "associative_recall": lambda: AssociativeRecallTask(**SIZES),
    "dynamic_ngrams": lambda: DynamicNGramsTask(n=4, length=30, test_lengths=[30, 60], **SIZES),
    "priority_sort": lambda: PrioritySortTask(**SIZES),
    "sort": lambda: SortTask(**SIZES),
    "graph_traversal": lambda: GraphTraversalTask(**SIZES),
    "shortest_path": lambda: ShortestPathTask(**SIZES),
    "family_tree": lambda: FamilyTreeTask(**SIZES),
    "copy_transduction": lambda: CopyTransduction(**SIZES),
    "reversal": lambda: ReversalTask(**SIZES),
    "bigram_flip": lambda: BigramFlipTask(**SIZES),
    "svo_to_sov": lambda: SVOtoSOVTask(**SIZES),
    "gender_conjugation": lambda: GenderConjugationTask(**SIZES),
    "dyck": lambda: DyckTask(**SIZES),
    "parity": lambda: ParityTask(**SIZES),
    "logic": lambda: LogicTask(**SIZES),
    "addition": lambda: AdditionTask(**SIZES),
    "nth_farthest": lambda: NthFarthestTask(**SIZES),
}

PINNED = {'copy': {'names': ['len20', 'len40', 'len80', 'len120'],
          'train': ['4e290b5db4f60f2aac3f9eb0', '070b69f83bf9557b802d4172'],
          'val': '3f9e40a10f0edad253b54ee1',
          'example': '8123d624695ee21af7a8fa54',
          'test': ['8246278e56c7bc83033eb29d',
                   'c635f08e66f1d727234763a7',
                   'a319e17d602b23a81f313ce1',
                   '5101f0115b57815c2c5a644c']},
 'repeat_copy': {'names': ['len10_rep10', 'len20_rep10', 'len10_rep20'],
                 'train': ['60995aa14b42a2803ebdc4f4', '858a41c3c8c19e5cd1a0acbb'],
                 'val': '5ccae54a9a485fab5ffefd7a',
                 'example': '25c83b95aaa07eba12fa69f0',
                 'test': ['17945427e0173c20009b39bd', 'd22c66c90e838e34c91d18e0', 'f74e71dd4f3e0d2b561d94f0']},
 'associative_recall': {'names': ['items6', 'items12', 'items20'],
                        'train': ['a946732983fcae09a0dcdebb', '0d85672ff6f03c8ad20cc1a4'],
                        'val': 'a9c29d4f15feba2950457ae4',
                        'example': '7fac705634d91813855f2032',
                        'test': ['dbf661764ae9d9d1576f920f', '02f8bade897ed6aacffec657', 'd908f6e0739a337e8a066d44']},
 'dynamic_ngrams': {'names': ['len30', 'len60'],
                    'train': ['a5a718648ad90dc3c4764c65', '84bce778d9943cb819f38e57'],
                    'val': '0a46bf56f09f5cf776b88b5a',
                    'example': '1fd352037831d0bc1be88e96',
                    'test': ['9ca7e02a546069f71b68289f', 'c2444e0697477b250bf17417']},
 'priority_sort': {'names': ['in20_out16', 'in40_out32'],
                   'train': ['03777e9c600682eedfaa33fa', '23937af196d1b09d13ca466c'],
                   'val': 'c95cea53d4df9730c7dc5964',
                   'example': '3fb1d886fb54569535799717',
                   'test': ['07829be850f53c6cc31b5aac', '99eeb2657edb42119db3ce77']},
 'sort': {'names': ['items8', 'items16', 'items24'],
          'train': ['a20e578596c82dee1a4036fe', 'ac789e4260d862579bf611be'],
          'val': '63a1033f4ad6cb7548a3dafc',
          'example': '1204bc5ebc52224579b66aed',
          'test': ['0bd71ad0c3242ee44493e875', '632f9f88d398e82e9fdc2021', '3f1064926825535265bd3546']},
 'graph_traversal': {'names': ['nodes8_path3', 'nodes12_path5'],
                     'train': ['8f6e9d66103e85d0b3387af5', '59a62d9a16ce037fb941c7b5'],
                     'val': 'fc1e5e6ec92600547f134086',
                     'example': '279bf5efefbf4e7dd4c82b75',
                     'test': ['48135a5c2aa06045847c6c67', '1a4e6836ef184fb85e4c2cae']},
 'shortest_path': {'names': ['nodes8', 'nodes12'],
                   'train': ['c5d88df90722c3b8babf1944', '2cd0931ea37576fb218bb9cb'],
                   'val': '4c8765391df27572cb8876f7',
                   'example': '4a95ce5410aed3c11146a688',
                   'test': ['b3a864f99d33f590e5e698b1', 'b2bd48a3944325905bbe3883']},
 'family_tree': {'names': ['people12', 'people18', 'people24'],
                 'train': ['2b5c2a8da719520462d637f4', 'da1c8e975297c06ce1e2cb9c'],
                 'val': 'fd4b7cfbbe7a83c8d7838b9a',
                 'example': '4282884c59e892c758b278f6',
                 'test': ['e6c6bdb65a5940d51b8d9939', '3465908efd218d341e8ce5ee', 'e05a2437ba6366da6ecb6ea2']}}

# the transduction and Dyck tasks of issue 11, pinned when they were written
PINNED.update({
    'copy_transduction': {'names': ['len65', 'len96', 'len128'],
                          'train': ['aefaf9a0b78f904a1cd93e46', '6942cddf46157ab8d3b1b21e'],
                          'val': 'd6a267a09292f9945008540d',
                          'example': '8ab68ed3f4ee5d362f6e697a',
                          'test': ['339243fad3eb200121a07d8d', '783db80d7a56d7485de71681', 'e9aece12b43a8c60117443a4']},
    'reversal': {'names': ['len65', 'len96', 'len128'],
                 'train': ['2956596398cc04b835981c3a', '8fe8b8f73bfd50c3bab6cdaa'],
                 'val': '45418e3122d65ca3bea15dea',
                 'example': '0a69a07fa2d39e88757a006f',
                 'test': ['9cfb5480a9c62c4a885407ac', 'e73fa684f42f97f50f14dffe', '053eaf58badb9842dc2951b1']},
    'bigram_flip': {'names': ['len65', 'len96', 'len128'],
                    'train': ['a0d5a7a1bce0b046b544d9c4', '533d08518a30f87c0e39d16e'],
                    'val': 'ebb1cc637615e935f3ac083b',
                    'example': 'b5e5750060439b15a18e088a',
                    'test': ['1304aaec3d09aebee50fb65f', '0a10ce361f26de9255a3071b', 'f9aaa47c5e13988352f6d2e1']},
    'svo_to_sov': {'names': ['len65', 'len96', 'len128'],
                   'train': ['ea9102ff5ed60706764bd8d2', 'd72e297c8e6d3680e80fecfc'],
                   'val': '45af38204130b95019258c91',
                   'example': '79914bd88e8c253913a80f61',
                   'test': ['6043ccdcdcbc8a9524326a9d', 'f5c3887e7ba99aaa843691f0', '30a3b935c485dab5297b6c89']},
    'gender_conjugation': {'names': ['len65', 'len96', 'len128'],
                           'train': ['44adb56664ba94477fc84cbf', 'a4408c2870b34d37be684345'],
                           'val': 'e5666dd06706d7693da123a8',
                           'example': '4b20e5db991514d0708795ed',
                           'test': ['c1e3cb36fb72d2a1092830f2', '37298cbf2a1979cecd6e6109', '9e16f9d5aa8c485e95a0de36']},
    'dyck': {'names': ['len50_depth10', 'len76_depth15', 'len100_depth20'],
             'train': ['7bc7df83f7ab04aa066b10b7', '9b5ed75262dfdc731945b722'],
             'val': 'c3c073628f8a8ac896afa86e',
             'example': 'ff862e5a870935baa6a7bde8',
             'test': ['3c2fcbd2d06c60e0d5e875b6', '4d03ebe5c7e1ecd317a6284d', '26f21cb7efe11304b211845a']},
    # issue 12 (ACT) and issue 13 (N-th farthest) tasks, pinned when they were added
    'parity': {'names': ['n16', 'n32', 'n64'],
               'train': ['720b2eb1fae3fdd9c012ca59', '17c175d38d94467b42e1254b'],
               'val': '348226f5bbd6e9e1f96418ed',
               'example': '4e8f66dfc0adb0760a453711',
               'test': ['22bcba735cf2b1c76c96182f', '38751cd59c84516c4f9a2a2c', '8954e89eaf9ee6fba17adda9']},
    'logic': {'names': ['len10'],
              'train': ['94e7d3494f4d1b0e7f461e47', '8b846ffc7542ca21dbcccebb'],
              'val': 'df87dd9e96acc4cc3adfc5b7',
              'example': '1431c96d760b2b06354a4e06',
              'test': ['9e8e1887e77a833fbebb4e4c']},
    'addition': {'names': ['len5'],
                 'train': ['f94b723581bdc42037976b40', '29fce337d4705328c55a5884'],
                 'val': 'd2d0e81e1fd2a61b5e9008ec',
                 'example': '6342b5096f9f9fa5bc85bd57',
                 'test': ['c4b753d3b91abbc5c56c5af2']},
    'nth_farthest': {'names': ['obj8'],
                     'train': ['a2c8fe9f9a898dcff29d8a4e', 'b0c88181ae626b569c9d38ee'],
                     'val': '910a9d58342b6d18187f53d3',
                     'example': '6f96cf189446eca6d551b3e5',
                     'test': ['735f6ba69f944bc18c93e29f']},
})

MULTI = ['3c3f7d775e3438dc715b54cc', 'ae5e63fd296133f106929be5']


def digest(batch: dict) -> str:
    """The first 24 hex digits of a sha256 over every tensor (sorted by key) with its shape and dtype."""
    h = hashlib.sha256()
    for key in sorted(batch):
        t = batch[key]
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def test_every_generated_builtin_task_is_pinned() -> None:
    from mannkit.core.registry import registry

    generated = {
        e.cls.__name__ for e in registry.entries("task")
        if issubclass(e.cls, SequenceTask) and e.cls.__module__.startswith("mannkit.tasks")
    }
    pinned = {type(make()).__name__ for make in TASKS.values()}
    assert generated <= pinned, f"pin these tasks too: {sorted(generated - pinned)}"


@pytest.mark.parametrize("name", list(TASKS))
def test_batches_match_the_pinned_checksums(name: str) -> None:
    task = TASKS[name]()
    loader = iter(task.train_dataloader())
    got = {
        "names": task.test_set_names,
        "train": [digest(next(loader)), digest(next(loader))],
        "val": digest(task.val_set[0]),
        "example": digest(task.example_batch(2)),
        "test": [digest(batches[0]) for batches in task.test_sets],
    }
    assert got == PINNED[name]


def test_multitask_batches_match_the_pinned_checksum() -> None:
    multi = MultiTask(AssociativeRecallTask(bits=4, max_items=3, **SIZES), [CopyTask(bits=4, max_length=3, **SIZES)], [0.5])
    batch = next(iter(multi.train_dataloader()))
    aux = batch.pop("aux")["copy"]
    assert [digest(batch), digest(aux)] == MULTI


def test_a_changed_tensor_changes_the_digest() -> None:
    batch = CopyTask(**SIZES).example_batch(2)
    before = digest(batch)
    batch["target"][0, -1, 0] = 1.0 - batch["target"][0, -1, 0]
    assert digest(batch) != before
