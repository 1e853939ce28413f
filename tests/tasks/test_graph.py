"""Graph tasks: hand-checked graphs and trees, generated batches decoded and re-solved independently.

The end-to-end tests read each generated sequence back from its one-hot steps, solve it with code
written here (a dictionary walk, a brute-force enumeration of simple paths, relation algebra over
the decoded facts) and compare with the targets. Sizes are distinct primes where they can be.
"""

from __future__ import annotations

import doctest
from types import SimpleNamespace

import pytest
import torch

import mannkit.tasks.family_tree as family_module
import mannkit.tasks.graph as graph_module
import mannkit.tasks.graph_base as graph_base_module
import mannkit.tasks.graph_paths as graph_paths_module
from mannkit.core.errors import ConfigError, DataError
from mannkit.core.registry import registry
from mannkit.tasks import FamilyTreeTask, GraphTraversalTask, ShortestPathTask
from mannkit.tasks.graph import (
    FAMILY_DERIVED_RELATIONS,
    FAMILY_RELATIONS,
    Family,
    GraphSequence,
    decode_triples,
    family_facts,
    follow_labels,
    random_family,
    random_graph,
    relatives,
    unique_shortest_paths,
)

SIZES = {"batch_size": 7, "train_batches": 3, "val_batches": 2, "test_batches": 2}
SMALL = {
    "traversal": lambda **kw: GraphTraversalTask(
        id_space=13, num_labels=3, max_out_degree=2, min_nodes=5, max_nodes=7, max_path_length=3,
        planning_steps=2, test_nodes=[11, 13], test_path_lengths=[4, 5], **kw,
    ),
    "shortest": lambda **kw: ShortestPathTask(
        id_space=13, num_labels=3, max_out_degree=2, min_nodes=5, max_nodes=7, planning_steps=3,
        test_nodes=[11, 13], **kw,
    ),
    "family": lambda **kw: FamilyTreeTask(id_space=17, min_people=8, max_people=11, test_people=[13, 17], **kw),
}


def small(name: str, **kw):
    return SMALL[name](**{**SIZES, **kw})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def decode(task, batch, b: int) -> SimpleNamespace:
    """Sequence b of a batch, read back: graph triples, query slots, answer targets, and the phase of each step."""
    x, y, mask = batch["input"][b], batch["target"][b], batch["mask"][b]
    flag = 2 * task.id_space + task.label_count
    graph_steps = x[:, flag].nonzero().flatten().tolist()
    query_steps = x[:, flag + 1].nonzero().flatten().tolist()
    answer_steps = x[:, flag + 2].nonzero().flatten().tolist()
    fields = (task.id_space, task.label_count)
    return SimpleNamespace(
        graph=decode_triples(x[graph_steps], *fields),
        query=decode_triples(x[query_steps], *fields),
        answer=decode_triples(y[answer_steps], *fields),
        graph_steps=graph_steps,
        query_steps=query_steps,
        answer_steps=answer_steps,
        scored=mask.nonzero().flatten().tolist(),
    )


# -- shared pieces ---------------------------------------------------------------------------


def test_decode_triples_reads_each_field_and_empty_fields():
    S, L = 3, 2
    steps = torch.zeros(3, 2 * S + L + 3)
    steps[0, [2, S + 1, S + L + 0]] = 1.0  # (2, 1, 0)
    steps[1, S + 0] = 1.0  # (-, 0, -)
    steps[2, 2 * S + L] = 1.0  # a flag alone: no triple
    assert decode_triples(steps, S, L) == [(2, 1, 0), (None, 0, None), (None, None, None)]


def test_encode_lays_out_phases_hand_checked():
    # S = 3 ids, L = 2 labels, 1 planning step: channels [src 0-2 | label 3-4 | dst 5-7 | graph 8, query 9, answer 10].
    task = GraphTraversalTask(id_space=3, num_labels=2, min_nodes=2, max_nodes=3, planning_steps=1,
                              test_nodes=[3], test_path_lengths=[2])
    long = GraphSequence([(0, 1, 2), (2, 0, 0)], [(0, 1, None)], [(0, 1, 2)])
    short = GraphSequence([(1, 0, 2)], [(1, 0, None)], [None])
    batch = task.encode([long, short])
    x, y, mask = batch["input"], batch["target"], batch["mask"]
    assert x.shape == (2, 5, 11) and y.shape == (2, 5, 8) and mask.shape == (2, 5)  # T = 2 graph + 1 + 1 + 1
    assert x[0, 0].nonzero().flatten().tolist() == [0, 4, 7, 8]  # (0, 1, 2) + graph flag
    assert x[0, 1].nonzero().flatten().tolist() == [2, 3, 5, 8]  # (2, 0, 0) + graph flag
    assert x[1, 0].abs().sum() == 0 and x[1, 1].nonzero().flatten().tolist() == [1, 3, 7, 8]  # padded first
    assert x[0, 2].nonzero().flatten().tolist() == [0, 4, 9]  # query (0, 1, -) + query flag
    assert x[:, 3].abs().sum() == 0  # planning: blank
    assert [x[b, 4].nonzero().flatten().tolist() for b in range(2)] == [[10], [10]]  # answer flag only
    assert mask.tolist() == [[0, 0, 0, 0, 1]] * 2
    assert y[0, 4].nonzero().flatten().tolist() == [0, 4, 7] and y[1].abs().sum() == 0 and y[0, :4].abs().sum() == 0


@pytest.mark.parametrize("seed", range(5))
def test_random_graph_invariants(seed):
    n, S, D, L = 7, 13, 2, 3
    edges = random_graph(gen(seed), n, S, D, L)
    nodes = {s for s, _, _ in edges}
    assert len(nodes) == n and nodes >= {d for _, _, d in edges} and all(0 <= v < S for v in nodes)
    for node in nodes:
        out = [(label, d) for s, label, d in edges if s == node]
        assert 1 <= len(out) <= D
        assert len({label for label, _ in out}) == len(out) and len({d for _, d in out}) == len(out)
        assert all(d != node and 0 <= label < L for label, d in out)
    assert edges == random_graph(gen(seed), n, S, D, L)


def test_random_graph_ids_are_not_positions_and_the_order_is_shuffled():
    id_sets = [frozenset(s for s, _, _ in random_graph(gen(seed), 5, 13, 1, 2)) for seed in range(20)]
    assert len(set(id_sets)) > 10 and any(max(ids) >= 5 for ids in id_sets)
    firsts = {random_graph(gen(seed), 5, 13, 2, 2)[0][0] for seed in range(20)}
    assert len(firsts) > 3  # the description does not start with the same node


def test_out_degree_is_capped_by_the_other_nodes():
    edges = random_graph(gen(1), 2, 5, 3, 3)  # 2 nodes: one out-edge each, to the other
    assert sorted((s, d) for s, _, d in edges) == sorted([(edges[0][0], edges[0][2]), (edges[0][2], edges[0][0])])


# -- 1. traversal ----------------------------------------------------------------------------

HAND_GRAPH = [(4, 0, 7), (7, 1, 4), (7, 0, 2), (2, 2, 9), (9, 0, 4), (4, 1, 9)]


def test_follow_labels_hand_checked():
    assert follow_labels(HAND_GRAPH, 4, [0, 0, 2, 0]) == [(4, 0, 7), (7, 0, 2), (2, 2, 9), (9, 0, 4)]
    assert follow_labels(HAND_GRAPH, 9, []) == []
    with pytest.raises(DataError, match=r"^follow_labels: node 2 has no out-edge labelled 0; query only existing edges\.$"):
        follow_labels(HAND_GRAPH, 7, [0, 0])


def test_traversal_answers_the_walk_of_the_query():
    task = small("traversal")
    for seed in range(3):
        batch = task.generate(gen(seed), 11, min_nodes=5, max_nodes=7, min_path_length=3, max_path_length=3)
        assert batch["mask"].shape[0] == 11 and batch["input"].shape[2] == 2 * 13 + 3 + 3
        for b in range(11):
            seq = decode(task, batch, b)
            step = {(s, label): d for s, label, d in seq.graph}  # the walk, solved here by a dict
            start, labels = seq.query[0][0], [label for _, label, _ in seq.query]
            assert seq.query[0][2] is None and all(q[0] is None and q[2] is None for q in seq.query[1:])
            expected, node = [], start
            for label in labels:
                expected.append((node, label, step[(node, label)]))
                node = step[(node, label)]
            assert seq.answer == expected and len(expected) == 3
            assert seq.scored == seq.answer_steps  # only the answer is scored
            planning = range(seq.query_steps[-1] + 1, seq.answer_steps[0])
            assert len(planning) == 2 and batch["input"][b, list(planning)].abs().sum() == 0
            assert seq.graph_steps == list(range(seq.query_steps[0] - len(seq.graph), seq.query_steps[0]))


def test_traversal_path_lengths_cover_the_range_per_batch():
    task = small("traversal")
    g = gen(4)
    lengths = {int(task.generate(g, 2, min_path_length=1, max_path_length=4)["mask"][0].sum()) for _ in range(40)}
    assert lengths == {1, 2, 3, 4}


# -- 2. shortest path ------------------------------------------------------------------------


def brute_force_paths(edges, start, goal):
    """Every simple path from start to goal (depth-first enumeration), as lists of triples."""
    found, stack = [], [(start, [], {start})]
    while stack:
        node, path, seen = stack.pop()
        if node == goal and path:
            found.append(path)
            continue
        for edge in edges:
            if edge[0] == node and edge[2] not in seen:
                stack.append((edge[2], path + [edge], seen | {edge[2]}))
    return found


def test_unique_shortest_paths_hand_checked():
    # 1 -> 2 -> 3 and 1 -> 5 -> 3 tie; 3 -> 6 then inherits the tie; 2 -> 6 is direct.
    edges = [(1, 0, 2), (2, 0, 3), (1, 1, 5), (5, 0, 3), (3, 0, 6), (2, 1, 6)]
    paths = unique_shortest_paths(edges)
    assert (1, 3) not in paths and (3, 1) not in paths  # tied, unreachable
    assert paths[(1, 6)] == [(1, 0, 2), (2, 1, 6)]  # length 2 beats 1-2-3-6 and 1-5-3-6
    assert paths[(5, 6)] == [(5, 0, 3), (3, 0, 6)]
    assert sorted(paths) == [(1, 2), (1, 5), (1, 6), (2, 3), (2, 6), (3, 6), (5, 3), (5, 6)]


@pytest.mark.parametrize("seed", range(4))
def test_unique_shortest_paths_match_brute_force(seed):
    edges = random_graph(gen(seed), 7, 11, 3, 3)
    paths = unique_shortest_paths(edges)
    nodes = sorted({s for s, _, _ in edges})
    for start in nodes:
        for goal in nodes:
            if start == goal:
                continue
            every = brute_force_paths(edges, start, goal)
            best = min((len(p) for p in every), default=None)
            shortest = [p for p in every if len(p) == best]
            assert ((start, goal) in paths) == (len(shortest) == 1)
            if len(shortest) == 1:
                assert paths[(start, goal)] == shortest[0]


def test_shortest_path_answers_the_unique_shortest_path():
    task = small("shortest")
    batch = task.generate(gen(2), 13, min_nodes=5, max_nodes=7)
    lengths = []
    for b in range(13):
        seq = decode(task, batch, b)
        (start, label, goal), = seq.query
        assert label is None and start != goal
        every = brute_force_paths(seq.graph, start, goal)
        best = min(len(p) for p in every)
        assert [p for p in every if len(p) == best] == [seq.answer[:best]]  # unique, and it is the answer
        assert all(t == (None, None, None) for t in seq.answer[best:])  # then nothing
        assert seq.scored == seq.answer_steps and len(seq.answer) == int(batch["mask"][b].sum())
        lengths.append(best)
    assert len(seq.answer) == max(lengths) and len(set(lengths)) > 1


# -- 3. family trees -------------------------------------------------------------------------

# Ids 20+i for person i. 0 m. 1: grandparents (paternal side of 6, maternal of 8). Their children: 2 (son,
# married to 3) and 4 (daughter, married to 5) and 9 (son, unmarried). 6 (son of 2, 3), 7 (daughter of 2, 3)
# and 8 (son of 4, 5). 10 married 6.
TREE = Family(
    ids=tuple(range(20, 31)),
    male=(True, False, True, False, False, True, True, False, True, True, False),
    father=(None, None, 0, None, 0, None, 2, 2, 5, 0, None),
    mother=(None, None, 1, None, 1, None, 3, 3, 4, 1, None),
    spouse=(1, 0, 3, 2, 5, 4, 10, None, None, None, 6),
)
TREE_EXPECTED = {
    "paternal_grandfather": {6: {0}, 7: {0}},
    "paternal_grandmother": {6: {1}, 7: {1}},
    "maternal_grandfather": {8: {0}},
    "maternal_grandmother": {8: {1}},
    "brother": {2: {9}, 4: {2, 9}, 9: {2}, 7: {6}},
    "sister": {2: {4}, 9: {4}, 6: {7}},
    "uncle": {6: {9}, 7: {9}, 8: {2, 9}},
    "aunt": {6: {4}, 7: {4}},
    "cousin": {6: {8}, 7: {8}, 8: {6, 7}},
    "maternal_great_uncle": {},  # no great-uncle in this tree: see the next test
    "father_in_law": {3: {0}, 5: {0}, 10: {2}},
    "mother_in_law": {3: {1}, 5: {1}, 10: {3}},
    "nephew": {2: {8}, 4: {6}, 9: {6, 8}},
}


@pytest.mark.parametrize("relation", FAMILY_DERIVED_RELATIONS)
def test_relatives_hand_checked(relation):
    got = relatives(TREE, relation)
    assert {a: kin for a, kin in enumerate(got) if kin} == TREE_EXPECTED[relation]


def test_maternal_great_uncle_hand_checked():
    # 8's mother 4 has parents 0, 1; give 0 a brother 13 (son of 11, 12): he is 8's maternal great-uncle.
    tree = Family(
        ids=tuple(range(14)),
        male=TREE.male + (True, False, True),
        father=(11,) + TREE.father[1:] + (None, None, 11),
        mother=(12,) + TREE.mother[1:] + (None, None, 12),
        spouse=TREE.spouse + (12, 11, None),
    )
    got = relatives(tree, "maternal_great_uncle")
    assert {a: kin for a, kin in enumerate(got) if kin} == {8: {13}}  # not 6 or 7: their link runs through a father


def test_family_facts_hand_checked():
    tree = Family(ids=(30, 31, 32), male=(True, False, False), father=(None, None, 0), mother=(None, None, 1),
                  spouse=(1, 0, None))
    label = {name: i for i, name in enumerate(FAMILY_RELATIONS)}
    assert sorted(family_facts(tree)) == sorted([
        (30, label["wife"], 31), (31, label["husband"], 30),
        (32, label["father"], 30), (32, label["mother"], 31),
        (30, label["daughter"], 32), (31, label["daughter"], 32),
    ])
    with pytest.raises(ConfigError, match=r"^relatives: relation 'cousins' is unknown; did you mean 'cousin'\?"):
        relatives(tree, "cousins")


@pytest.mark.parametrize("seed", range(3))
def test_random_family_is_a_consistent_tree(seed):
    family = random_family(gen(seed), 13, 17, max_children=2)
    P = len(family.ids)
    assert P == 13 and len(set(family.ids)) == 13 and all(0 <= i < 17 for i in family.ids)
    for a in range(P):
        if family.father[a] is not None:
            f, m = family.father[a], family.mother[a]
            assert family.male[f] and not family.male[m] and family.spouse[f] == m and f < a and m < a
        if family.spouse[a] is not None:
            s = family.spouse[a]
            assert family.spouse[s] == a and family.male[s] != family.male[a]
            assert family.father[a] is None or family.father[s] is None  # nobody marries a relative
    couples = {(family.father[a], family.mother[a]) for a in range(P) if family.father[a] is not None}
    assert all(sum((family.father[a], family.mother[a]) == c for a in range(P)) <= 2 for c in couples)


def compose(r, s):
    return {(a, c) for a, b in r for b2, c in s if b == b2}


def derived_from_facts(facts):
    """The derived relations by relation algebra over decoded facts (written independently of the module)."""
    rel = {name: {(a, b) for a, label, b in facts if FAMILY_RELATIONS[label] == name} for name in FAMILY_RELATIONS[:6]}
    men = {b for name in ("father", "son", "husband") for _, b in rel[name]} | {a for a, _ in rel["wife"]}
    parent, child, spouse = rel["father"] | rel["mother"], rel["son"] | rel["daughter"], rel["husband"] | rel["wife"]
    sibling = {(a, c) for a, c in compose(rel["father"], child) & compose(rel["mother"], child) if a != c}
    brother, sister = {(a, b) for a, b in sibling if b in men}, {(a, b) for a, b in sibling if b not in men}
    return {
        "paternal_grandfather": compose(rel["father"], rel["father"]),
        "paternal_grandmother": compose(rel["father"], rel["mother"]),
        "maternal_grandfather": compose(rel["mother"], rel["father"]),
        "maternal_grandmother": compose(rel["mother"], rel["mother"]),
        "brother": brother,
        "sister": sister,
        "uncle": compose(parent, brother),
        "aunt": compose(parent, sister),
        "cousin": compose(compose(parent, sibling), child),
        "maternal_great_uncle": compose(compose(rel["mother"], parent), brother),
        "father_in_law": compose(spouse, rel["father"]),
        "mother_in_law": compose(spouse, rel["mother"]),
        "nephew": compose(sibling, rel["son"]),
    }


def test_family_answers_the_unique_relative():
    task = small("family")
    asked = set()
    for seed in range(4):
        batch = task.generate(gen(seed), 11, min_people=8, max_people=11)
        assert batch["input"].shape[2] == 2 * 17 + 19 + 3 and batch["target"].shape[2] == 2 * 17 + 19
        for b in range(11):
            seq = decode(task, batch, b)
            (a, label, blank), = seq.query
            assert blank is None and seq.answer[0][:2] == (a, label)
            relation = FAMILY_RELATIONS[label]
            answers = {y for x, y in derived_from_facts(seq.graph)[relation] if x == a}
            assert answers == {seq.answer[0][2]}
            assert seq.scored == seq.answer_steps and len(seq.answer_steps) == 1
            asked.add(relation)
    assert len(asked) >= 8


def test_family_asks_only_the_chosen_relations():
    task = small("family", relations=["cousin", "aunt", "cousin"])
    assert task.relations == ["cousin", "aunt"] and task.label_count == 19  # the label channels do not move
    batch = task.generate(gen(1), 13, min_people=9, max_people=11)
    labels = {FAMILY_RELATIONS[decode(task, batch, b).query[0][1]] for b in range(13)}
    assert labels == {"cousin", "aunt"}


# -- every graph task ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SMALL))
def test_batch_contract_and_masks(name):
    task = small(name)
    batch = task.example_batch(batch_size=5)
    x, y, mask = batch["input"], batch["target"], batch["mask"]
    B, T = mask.shape
    assert B == 5 and x.shape == (B, T, task.input_size) and y.shape == (B, T, task.output_size)
    assert task.input_size == task.output_size + 3 == 2 * task.id_space + task.label_count + 3
    assert x.dtype == y.dtype == mask.dtype == torch.float32 and set(x.unique().tolist()) <= {0.0, 1.0}
    assert set(y.unique().tolist()) <= {0.0, 1.0} and y[mask == 0].abs().sum() == 0
    assert torch.equal(mask, x[:, :, -1])  # scored exactly where the answer flag is set
    assert x[:, :, -3:].sum(dim=2).max() <= 1  # one phase per step
    assert x[mask == 1][:, :-1].abs().sum() == 0  # answer steps give nothing away


@pytest.mark.parametrize("name", sorted(SMALL))
def test_seeded_and_deterministic(name):
    task = small(name)
    difficulty = task.train_difficulty()
    a, b, c = (task.generate(gen(s), 5, **difficulty) for s in (7, 7, 8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["input"].shape != c["input"].shape or not torch.equal(a["input"], c["input"])
    first, again = small(name).example_batch(), small(name).example_batch()
    assert torch.equal(first["input"], again["input"]) and torch.equal(first["target"], again["target"])
    seeded = [next(iter(small(name, seed=s).train_dataloader()))["input"] for s in (0, 1)]
    assert seeded[0].shape != seeded[1].shape or not torch.equal(*seeded)


def count_nodes(task, batch, b):
    seq = decode(task, batch, b)
    return len({v for s, _, d in seq.graph for v in (s, d)})


def test_curriculum_attributes_grow_the_graphs_and_paths():
    task = small("traversal")
    loader = iter(task.train_dataloader())
    task.min_nodes = task.max_nodes = 11  # a curriculum, mid-epoch
    task.min_path_length = task.max_path_length = 6
    batch = next(loader)
    assert [count_nodes(task, batch, b) for b in range(7)] == [11] * 7 and batch["mask"].sum(dim=1).tolist() == [6.0] * 7
    state = task.state_dict()
    assert state == {"min_nodes": 11, "max_nodes": 11, "min_path_length": 6, "max_path_length": 6, "train_epoch": 1}
    restored = small("traversal")
    restored.load_state_dict(state)
    assert restored.train_difficulty() == task.train_difficulty()
    task.max_nodes = 14  # beyond the id space
    with pytest.raises(ConfigError, match=r"max_nodes \(14\) must be at most id_space \(13\)"):
        next(loader)


def test_curriculum_grows_shortest_paths_and_families():
    shortest = small("shortest")
    shortest.min_nodes = shortest.max_nodes = 12
    batch = next(iter(shortest.train_dataloader()))
    assert [count_nodes(shortest, batch, b) for b in range(7)] == [12] * 7
    family = small("family")
    family.min_people = family.max_people = 16
    batch = next(iter(family.train_dataloader()))
    assert [count_nodes(family, batch, b) for b in range(7)] == [16] * 7


@pytest.mark.parametrize("name", sorted(SMALL))
def test_fixed_sets_and_bigger_test_sets(name):
    task = small(name)
    task.setup("fit")
    val = list(task.val_dataloader())
    assert len(val) == 2 and torch.equal(val[0]["input"], next(iter(small(name).val_dataloader()))["input"])
    task.setup("test")
    sizes = {"traversal": [11, 13], "shortest": [11, 13], "family": [13, 17]}[name]
    for size, batches in zip(sizes, task.test_sets):
        assert len(batches) == 2 and all(count_nodes(task, batches[0], b) == size for b in range(7))
    again = small(name).test_sets[1][1]
    assert torch.equal(again["input"], task.test_sets[1][1]["input"])


def test_test_set_names():
    assert small("traversal").test_set_names == ["nodes11_path4", "nodes13_path5"]
    assert small("shortest").test_set_names == ["nodes11", "nodes13"]
    assert small("family").test_set_names == ["people13", "people17"]
    assert GraphTraversalTask().test_set_names == ["nodes8_path3", "nodes12_path5"]


def test_registered():
    for cls in (GraphTraversalTask, ShortestPathTask, FamilyTreeTask):
        assert registry.get(cls.__name__, "task") is cls


def test_docstring_examples_run():
    for module in (graph_module, graph_base_module, graph_paths_module, family_module):
        assert doctest.testmod(module).failed == 0, module.__name__


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (GraphTraversalTask, {"max_nodes": 13}, r"^GraphTraversalTask: max_nodes \(13\) must be at most id_space \(12\); lower max_nodes or raise id_space\.$"),
        (GraphTraversalTask, {"id_space": 7}, r"^GraphTraversalTask: max_nodes \(8\) must be at most id_space \(7\)"),
        (GraphTraversalTask, {"test_nodes": [8, 13]}, r"^GraphTraversalTask: test_nodes \(\[8, 13\]\) holds values above id_space \(12\); raise id_space to 13 or lower test_nodes\.$"),
        (GraphTraversalTask, {"max_out_degree": 4}, r"^GraphTraversalTask: max_out_degree \(4\) must be at most num_labels \(3\); lower max_out_degree or raise num_labels\.$"),
        (GraphTraversalTask, {"min_nodes": 1}, r"^GraphTraversalTask: min_nodes \(1\) must be at least 2; set min_nodes to 2 or more\.$"),
        (GraphTraversalTask, {"min_path_length": 0}, r"GraphTraversalTask: min_path_length \(0\) must be at least 1"),
        (GraphTraversalTask, {"min_path_length": 4}, r"GraphTraversalTask: min_path_length \(4\) must be at most max_path_length \(3\)"),
        (GraphTraversalTask, {"test_path_lengths": [3]}, r"GraphTraversalTask: test_nodes \(\[8, 12\]\) and test_path_lengths \(\[3\]\) must have the same number"),
        (GraphTraversalTask, {"num_labels": 0}, r"GraphTraversalTask: num_labels \(0\) must be at least 1"),
        (GraphTraversalTask, {"planning_steps": -1}, r"GraphTraversalTask: planning_steps \(-1\) must be at least 0"),
        (GraphTraversalTask, {"id_space": 1}, r"GraphTraversalTask: id_space \(1\) must be at least 2"),
        (ShortestPathTask, {"min_nodes": 9}, r"^ShortestPathTask: min_nodes \(9\) must be at most max_nodes \(8\)"),
        (ShortestPathTask, {"test_nodes": []}, r"^ShortestPathTask: test_nodes is empty"),
        (ShortestPathTask, {"max_out_degree": 0}, r"^ShortestPathTask: max_out_degree \(0\) must be at least 1"),
        (FamilyTreeTask, {"max_people": 25}, r"^FamilyTreeTask: max_people \(25\) must be at most id_space \(24\)"),
        (FamilyTreeTask, {"relations": ["cousins"]}, r"^FamilyTreeTask: relations holds 'cousins', which is not a derived relation; did you mean 'cousin'\?"),
        (FamilyTreeTask, {"relations": ["father"]}, r"^FamilyTreeTask: relations holds 'father', which is not a derived relation"),
        (FamilyTreeTask, {"relations": []}, r"^FamilyTreeTask: relations is empty"),
        (FamilyTreeTask, {"max_children": 0}, r"^FamilyTreeTask: max_children \(0\) must be at least 1"),
        (FamilyTreeTask, {"min_people": 5, "relations": ["cousin"]}, r"^FamilyTreeTask: no family of 5 to 5 people in 200 draws had a unique relative for relations \['cousin'\]; raise min_people or ask other relations\.$"),
        (FamilyTreeTask, {"max_children": 1, "relations": ["brother", "sister"]}, r"FamilyTreeTask: no family of 8 to 8 people"),
    ],
)
def test_constructor_validation(cls, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        cls(**kwargs)
