"""Family-tree inference (Graves et al., 2016): random family trees, their facts, derived relations, and the task.

Shape letters: B batch, T time, I input width, O output width, S person ids (``id_space``).
The channel layout and the four phases of a sequence are :class:`~mannkit.tasks.graph_base.GraphTask`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from mannkit.core.errors import ConfigError, suggest
from mannkit.core.registry import register
from mannkit.tasks.base import Batch, make_generator
from mannkit.tasks.difficulty import Difficulty, check_at_least
from mannkit.tasks.graph_base import GraphSequence, GraphTask, Triple, _shuffled, _uniform_int

__all__ = [
    "FamilyTreeTask",
    "Family",
    "FAMILY_BASE_RELATIONS",
    "FAMILY_DERIVED_RELATIONS",
    "FAMILY_RELATIONS",
    "random_family",
    "family_facts",
    "relatives",
]

# -- 3. family trees -------------------------------------------------------------------------

#: Relations given as facts: ``(a, r, b)`` reads "the r of a is b" (a's father is b, a's son is b ...).
FAMILY_BASE_RELATIONS = ("father", "mother", "son", "daughter", "husband", "wife")
#: Relations asked about, derived from the facts (blood relatives; siblings share both parents).
FAMILY_DERIVED_RELATIONS = (
    "paternal_grandfather",
    "paternal_grandmother",
    "maternal_grandfather",
    "maternal_grandmother",
    "brother",
    "sister",
    "uncle",
    "aunt",
    "cousin",
    "maternal_great_uncle",
    "father_in_law",
    "mother_in_law",
    "nephew",
)
#: Every label of the family tasks, in channel order.
FAMILY_RELATIONS = FAMILY_BASE_RELATIONS + FAMILY_DERIVED_RELATIONS


@dataclass(frozen=True)
class Family:
    """A family tree: people ``0..P-1`` with their ids, sexes, parents and spouses (None where absent).

    Everyone born into the tree has both parents in it; people who married in have none.
    """

    ids: tuple[int, ...]
    male: tuple[bool, ...]
    father: tuple[Optional[int], ...]
    mother: tuple[Optional[int], ...]
    spouse: tuple[Optional[int], ...]

    def parents(self, a: int) -> list[int]:
        return [p for p in (self.father[a], self.mother[a]) if p is not None]

    def children(self, a: int) -> list[int]:
        return [c for c in range(len(self.ids)) if a in (self.father[c], self.mother[c])]

    def siblings(self, a: int) -> list[int]:
        if self.father[a] is None:
            return []
        return [s for s in range(len(self.ids)) if s != a and (self.father[s], self.mother[s]) == (self.father[a], self.mother[a])]


def random_family(generator: torch.Generator, num_people: int, id_space: int, max_children: int) -> Family:
    """A random family tree of ``num_people`` people with distinct ids from ``0..id_space-1``.

    It starts with a married couple (person 0, a man, and person 1, a woman). Until the tree has
    ``num_people`` people, one step either marries an unmarried person born into the tree to a new
    person of the other sex (chance 1/2, or always when no couple can have more children), or gives
    a uniformly chosen couple with fewer than ``max_children`` children a new child (a son or a
    daughter with chance 1/2 each). Nobody marries a relative. Needs ``2 <= num_people <= id_space``.
    """
    ids = torch.randperm(id_space, generator=generator)[:num_people].tolist()
    male, father, mother, spouse = [True, False], [None, None], [None, None], [1, 0]
    couples, children = [(0, 1)], [0]  # (husband, wife) and their number of children
    while len(male) < num_people:
        new = len(male)
        singles = [p for p in range(new) if spouse[p] is None and father[p] is not None]
        fertile = [c for c in range(len(couples)) if children[c] < max_children]
        coin = float(torch.rand(1, generator=generator))
        if singles and (not fertile or coin < 0.5):
            p = singles[_uniform_int(generator, 0, len(singles) - 1)]
            male.append(not male[p])
            father.append(None)
            mother.append(None)
            spouse.append(p)
            spouse[p] = new
            couples.append((p, new) if male[p] else (new, p))
            children.append(0)
        else:
            c = fertile[_uniform_int(generator, 0, len(fertile) - 1)]
            male.append(bool(torch.rand(1, generator=generator) < 0.5))
            father.append(couples[c][0])
            mother.append(couples[c][1])
            spouse.append(None)
            children[c] += 1
    return Family(tuple(ids), tuple(male), tuple(father), tuple(mother), tuple(spouse))


def family_facts(family: Family) -> list[Triple]:
    """The base facts as id triples with labels indexing :data:`FAMILY_RELATIONS`, in a fixed order.

    Per child: ``(child, father, f)``, ``(child, mother, m)``, ``(f, son|daughter, child)``,
    ``(m, son|daughter, child)``; per couple: ``(wife, husband, him)`` and ``(husband, wife, her)``.
    """
    label = {name: i for i, name in enumerate(FAMILY_RELATIONS)}
    ids, facts = family.ids, []
    for a in range(len(ids)):
        f, m = family.father[a], family.mother[a]
        if f is not None and m is not None:
            child = label["son" if family.male[a] else "daughter"]
            facts += [(ids[a], label["father"], ids[f]), (ids[a], label["mother"], ids[m])]
            facts += [(ids[f], child, ids[a]), (ids[m], child, ids[a])]
        if family.spouse[a] is not None:
            facts.append((ids[a], label["wife" if family.male[a] else "husband"], ids[family.spouse[a]]))
    return facts


def _only(people: list[Optional[int]]) -> set[int]:
    return {p for p in people if p is not None}


def relatives(family: Family, relation: str) -> list[set[int]]:
    """For each person a (an index, not an id), the set of people b with "the ``relation`` of a is b".

    Blood relations only: an uncle is a brother of a parent (not an aunt's husband); a cousin is a
    child of a parent's sibling; a maternal great-uncle is a brother of the mother's father or
    mother; a nephew is a son of a sibling; in-laws are the spouse's parents.

    >>> tree = Family(ids=(10, 11, 12, 13), male=(True, False, True, False), father=(None, None, 0, 0),
    ...               mother=(None, None, 1, 1), spouse=(1, 0, None, None))
    >>> relatives(tree, "sister")   # 13 is 12's sister; 12 is a brother, not a sister, of 13
    [set(), set(), {3}, set()]
    """
    f, m, sp = family.father, family.mother, family.spouse
    men = {p for p in range(len(family.ids)) if family.male[p]}

    def grand(parent: tuple[Optional[int], ...], grandparent: tuple[Optional[int], ...], a: int) -> set[int]:
        return _only([grandparent[parent[a]]]) if parent[a] is not None else set()

    def parents_siblings(a: int) -> set[int]:
        return {s for p in family.parents(a) for s in family.siblings(p)}

    rules = {
        "paternal_grandfather": lambda a: grand(f, f, a),
        "paternal_grandmother": lambda a: grand(f, m, a),
        "maternal_grandfather": lambda a: grand(m, f, a),
        "maternal_grandmother": lambda a: grand(m, m, a),
        "brother": lambda a: set(family.siblings(a)) & men,
        "sister": lambda a: set(family.siblings(a)) - men,
        "uncle": lambda a: parents_siblings(a) & men,
        "aunt": lambda a: parents_siblings(a) - men,
        "cousin": lambda a: {c for s in parents_siblings(a) for c in family.children(s)},
        "maternal_great_uncle": lambda a: (
            {s for g in family.parents(m[a]) for s in family.siblings(g)} & men if m[a] is not None else set()
        ),
        "father_in_law": lambda a: grand(sp, f, a),
        "mother_in_law": lambda a: grand(sp, m, a),
        "nephew": lambda a: {c for s in family.siblings(a) for c in family.children(s)} & men,
    }
    if relation not in rules:
        raise ConfigError(
            f"relatives: relation '{relation}' is unknown{suggest(relation, rules)}; "
            f"choose from {list(FAMILY_DERIVED_RELATIONS)}."
        )
    return [rules[relation](a) for a in range(len(family.ids))]


#: Families drawn per sequence, at most, before a query is found (else a ConfigError).
_FAMILY_TRIES = 200


@register(kind="task")
class FamilyTreeTask(GraphTask):
    """Family-tree inference: read the base facts of a family tree, then name the person in a derived relation.

    Trees come from :func:`random_family` (``P`` uniform in ``[min_people, max_people]`` per
    sequence); their facts (:func:`family_facts`: father, mother, son, daughter, husband, wife)
    are the graph triples, in random order. The query asks for a derived relation (one of
    ``relations``, see :func:`relatives`) of one person, and the answer is the person: the
    relation is drawn uniformly among those of ``relations`` that some person has exactly one of,
    then the person uniformly among those, so the answer is unique. Query (1 step): ``(a, relation,
    -)``. Answer (1 scored step): ``(a, relation, b)``. The label channels are
    :data:`FAMILY_RELATIONS` (L = 19: the 6 base relations, then the 13 derived ones), whichever
    ``relations`` are asked. Layout: see the module docstring (I = 2S + 22, O = 2S + 19).

    Args:
        id_space: S, possible person ids; at least ``max_people`` and every test size.
        min_people: fewest people of a training tree (P is uniform per sequence); at least 2.
        max_people: most people of a training tree; a curriculum may raise it.
        max_children: most children per couple.
        relations: the derived relations that may be asked (names from ``FAMILY_DERIVED_RELATIONS``).
        planning_steps: blank, unscored steps between the query and the answer.
        test_people: one test set per tree size (named ``"people{P}"``).
        batch_size: sequences per batch (B).
        train_batches: batches per training epoch; each epoch draws new ones.
        val_batches: batches in the fixed validation set.
        test_batches: batches in each fixed test set.
        seed: seed of all generated data.

    >>> task = FamilyTreeTask(id_space=10, min_people=6, max_people=8, relations=["brother", "sister"], test_people=[10])
    >>> batch = task.example_batch(batch_size=2)
    >>> batch["input"].shape[2], batch["target"].shape[2], batch["mask"][:, -1].tolist()
    (42, 39, [1.0, 1.0])
    """

    difficulty = (Difficulty("people", tag="people", tests="test_people", low=2, at_most="id_space"),)

    def __init__(
        self,
        id_space: int = 24,
        min_people: int = 8,
        max_people: int = 12,
        max_children: int = 3,
        relations: list[str] = list(FAMILY_DERIVED_RELATIONS),  # noqa: B006, B008  (copied, never mutated)
        planning_steps: int = 2,
        test_people: list[int] = [12, 18, 24],  # noqa: B006
        batch_size: int = 16,
        train_batches: int = 1000,
        val_batches: int = 8,
        test_batches: int = 8,
        seed: int = 0,
    ) -> None:
        labels = len(FAMILY_RELATIONS)
        super().__init__(id_space, labels, planning_steps, batch_size, train_batches, val_batches, test_batches, seed)
        owner = "FamilyTreeTask"
        check_at_least(owner, "max_children", max_children, 1)
        if len(relations) == 0:
            raise ConfigError(f"{owner}: relations is empty; give at least one of {list(FAMILY_DERIVED_RELATIONS)}.")
        for name in relations:
            if name not in FAMILY_DERIVED_RELATIONS:
                raise ConfigError(
                    f"{owner}: relations holds '{name}', which is not a derived relation"
                    f"{suggest(name, FAMILY_DERIVED_RELATIONS)}; choose from {list(FAMILY_DERIVED_RELATIONS)}."
                )
        self.max_children, self.relations = max_children, list(dict.fromkeys(relations))
        self.set_difficulty(min_people=min_people, max_people=max_people, test_people=test_people)
        # Fail now, not mid-training, when the smallest trees can never hold an asked relation.
        self.generate(make_generator(seed, "probe"), 1, min_people=min_people, max_people=min_people)

    def _draw_query(self, generator: torch.Generator, min_people: int, max_people: int) -> GraphSequence:
        for _ in range(_FAMILY_TRIES):
            people = _uniform_int(generator, min_people, max_people)
            family = random_family(generator, people, self.id_space, self.max_children)
            options = []  # (relation, [(a, b), ...] where b is a's only such relative)
            for relation in self.relations:
                pairs = [(a, next(iter(kin))) for a, kin in enumerate(relatives(family, relation)) if len(kin) == 1]
                if pairs:
                    options.append((relation, pairs))
            if options:
                break
        else:
            raise ConfigError(
                f"FamilyTreeTask: no family of {min_people} to {max_people} people in {_FAMILY_TRIES} draws had a "
                f"unique relative for relations {self.relations}; raise min_people or ask other relations."
            )
        relation, pairs = options[_uniform_int(generator, 0, len(options) - 1)]
        a, b = pairs[_uniform_int(generator, 0, len(pairs) - 1)]
        label, ids = FAMILY_RELATIONS.index(relation), family.ids
        facts = _shuffled(generator, family_facts(family))
        return GraphSequence(facts, [(ids[a], label, None)], [(ids[a], label, ids[b])])

    def generate(self, generator: torch.Generator, batch_size: int, min_people: int = 8, max_people: int = 12) -> Batch:
        """One batch of ``batch_size`` trees, each with one query and one scored answer step."""
        return self.encode([self._draw_query(generator, min_people, max_people) for _ in range(batch_size)])
