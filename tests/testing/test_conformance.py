"""The conformance kit: every registered built-in passes it, and it catches broken components.

The first test iterates the registry, so a newly registered built-in is checked without new
test code. The rest build one deliberately broken component per check and pin the message.
"""

import ast
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from mannkit.cell import MemoryCell
from mannkit.core.registry import registry
from mannkit.nn import ContentAddressing, GRUController, MatrixMemory, MLPController, ReadHead, WriteHead
from mannkit.nn.memory import MatrixState
from mannkit.testing import (
    CHECKS,
    KIT_KINDS,
    SIZES,
    build_default,
    check_addressing,
    check_component,
    check_controller,
    check_head,
    check_memory,
    check_sequence_model,
    default_factory,
    parametrize_registry,
    register_example,
    registered_components,
    unchecked_reason,
)
from mannkit.testing import defaults as kit_defaults

REGISTERED = [(kind, name) for kind in KIT_KINDS for name in registered_components(kind)]


@pytest.mark.parametrize("kind, name", REGISTERED, ids=[f"{k}-{n}" for k, n in REGISTERED])
def test_every_registered_component_conforms(kind, name):
    """Every registered component, ours and installed plugins' (those that need partners the kit has no
    default for must register an example in their package; otherwise they are left to their own tests)."""
    reason = unchecked_reason(name, kind)
    if reason:
        pytest.skip(reason)
    check_component(registry.get(name, kind))


def test_the_registry_offers_every_kind_including_plugins():
    assert all(registered_components(kind) for kind in KIT_KINDS)
    assert "NTMAddressing" in registered_components("addressing")  # from the ntm plugin's entry point
    assert "MemoryCell" in registered_components("model")
    with pytest.raises(ValueError, match="kind must be one of controller, memory"):
        registered_components("task")


@parametrize_registry("head")
def test_parametrize_registry_gives_a_pytest_mark(name):
    assert name in {"ReadHead", "WriteHead"} or name in registry.names("head")


def test_default_construction_uses_the_kit_sizes_and_partners():
    memory = build_default("MatrixMemory")
    assert (memory.slots, memory.word_size) == (SIZES.N, SIZES.W)
    cell = build_default(MemoryCell)
    assert cell.controller.hidden_size == SIZES.H
    assert [type(h).__name__ for h in cell.heads] == ["WriteHead", "ReadHead"]
    assert isinstance(build_default("ReadHead").addressing, ContentAddressing)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: MatrixMemory(SIZES.N, SIZES.W, init="learned"),
        lambda: MatrixMemory(SIZES.N, SIZES.W, init="random"),
        lambda: GRUController(hidden_size=SIZES.H, layers=2),
        lambda: MLPController(hidden_size=SIZES.H, layers=2, activation="gelu"),
        lambda: ReadHead(ContentAddressing(), count=3),
        lambda: WriteHead(ContentAddressing(), count=2),
    ],
    ids=["learned-memory", "random-memory", "gru-2-layers", "mlp-gelu", "read-bank-3", "write-bank-2"],
)
def test_non_default_settings_conform(factory):
    check_component(factory)


# -- broken components: each must fail the check it breaks, with a message that says why -------
class UnusedParameterGRU(GRUController):
    def __init__(self, hidden_size: int = 13) -> None:
        super().__init__(hidden_size)
        self.unused = nn.Parameter(torch.zeros(3))


class DetachedStateGRU(GRUController):
    """Cuts the gradient path through its state: outputs no longer learn from earlier steps."""

    def forward(self, x, state):
        return super().forward(x, state.detach())


class NaNOnZeroInitMemory(MatrixMemory):
    """Normalises the rows of its initial memory: 0 / 0 when the memory starts at zero."""

    def initial_state(self, batch_size, device, dtype):
        memory = super().initial_state(batch_size, device, dtype).memory
        return MatrixState(memory / memory.norm(dim=-1, keepdim=True))


class NormalisingReadMemory(MatrixMemory):
    """Reads from unit-normalised rows without an epsilon: NaN on an all-zero memory."""

    def read(self, weights, state):
        return super().read(weights, MatrixState(state.memory / state.memory.norm(dim=-1, keepdim=True)))


class UnseededNoiseController(MLPController):
    """Adds noise from a generator seeded from the operating system: no two builds agree."""

    def __init__(self, hidden_size: int = 13) -> None:
        super().__init__(hidden_size)
        self.__dict__["_noise"] = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))

    def forward(self, x, state):
        h, state = super().forward(x, state)
        return h + 0.01 * torch.rand(h.shape, generator=self.__dict__["_noise"]), state


class CountingController(MLPController):
    """Keeps a step counter on self, so a second run of one module differs from the first."""

    def forward(self, x, state):
        self.__dict__["steps"] = self.__dict__.get("steps", 0) + 1
        h, state = super().forward(x, state)
        return h + 0.01 * self.__dict__["steps"], state


class DeadWeightController(MLPController):
    """Uses a parameter only through a product with zero: it is in the graph but never learns."""

    def __init__(self, hidden_size: int = 13) -> None:
        super().__init__(hidden_size)
        self.gain = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x, state):
        h, state = super().forward(x, state)
        return h + 0.0 * self.gain, state


class UnsavedProjectionController(MLPController):
    """Keeps a random matrix in a plain attribute: not in the state_dict, so a reload differs."""

    def __init__(self, hidden_size: int = 13) -> None:
        super().__init__(hidden_size)
        self.mix = torch.randn(hidden_size, hidden_size)

    def forward(self, x, state):
        h, state = super().forward(x, state)
        return h @ self.mix.to(h), state


class LambdaController(MLPController):
    def __init__(self, hidden_size: int = 13) -> None:
        super().__init__(hidden_size)
        self.squash = lambda h: torch.tanh(h)

    def forward(self, x, state):
        h, state = super().forward(x, state)
        return self.squash(h), state


class ForgetfulConfigController(MLPController):
    """Its to_config drops the activation, so a rebuilt controller uses relu instead of tanh."""

    def to_config(self):
        config = super().to_config()
        config["init_args"].pop("activation")
        return config


class UnnormalisedAddressing(ContentAddressing):
    def forward(self, params, memory_state, state):
        weights, state = super().forward(params, memory_state, state)
        return 2 * weights, state


class TransposedReadHead(ReadHead):
    def forward(self, params, memory, memory_state, state, record=False):
        out = super().forward(params, memory, memory_state, state, record)
        return out._replace(reads=out.reads.transpose(0, 1))


class NeedsAWidth(MLPController):
    def __init__(self, width: int) -> None:
        super().__init__(hidden_size=width)


@pytest.mark.parametrize(
    "check, factory, message",
    [
        (check_controller, UnusedParameterGRU,
         r"controller UnusedParameterGRU fails the gradients check: parameter 'unused' received no gradient"),
        (check_controller, DetachedStateGRU,
         r"fails the gradients check: the output at the last of 4 steps has no gradient with respect to the input at the first step"),
        (check_controller, DeadWeightController,
         r"fails the gradients check: parameter 'gain' has an all-zero gradient"),
        (check_memory, lambda: NaNOnZeroInitMemory(SIZES.N, SIZES.W, init_value=0.0),
         r"memory NaNOnZeroInitMemory fails the contract check: initial_state holds NaN or inf"),
        (check_memory, NormalisingReadMemory,
         r"memory NormalisingReadMemory fails the zero_memory check: all-zero inputs and an all-zero memory give non-finite outputs|zero_memory check: the reads hold NaN or inf on an all-zero memory"),
        (check_controller, UnseededNoiseController,
         r"fails the determinism check: two builds under torch\.manual_seed\(0\) give different outputs"),
        (check_controller, CountingController,
         r"fails the determinism check: running one module twice .* must not keep state on self"),
        (check_controller, UnsavedProjectionController,
         r"fails the state_dict check: a fresh build loaded with the state_dict gives different outputs"),
        (check_controller, LambdaController, r"fails the pickle check: the built module does not survive pickle"),
        (check_controller, lambda: ForgetfulConfigController(hidden_size=13, activation="tanh"),
         r"fails the config check: .*argument 'activation' is 'tanh' but 'relu' after the round trip"),
        (check_addressing, UnnormalisedAddressing, r"fails the contract check: the weights must sum to 1 over N"),
        (check_head, lambda: TransposedReadHead(ContentAddressing(), count=2),
         r"fails the contract check: forward gives reads of shape \[2, 3, 11\] but \[B, count, read_size\] = \[3, 2, 11\]"),
    ],
    ids=["unused-parameter", "detached-state", "zero-gradient", "nan-initial-state", "nan-read-on-zero", "unseeded-noise",
         "state-on-self", "unsaved-tensor", "unpicklable", "lossy-config", "unnormalised-weights", "transposed-reads"],
)
def test_the_kit_catches_a_broken_component(check, factory, message):
    with pytest.raises(AssertionError, match=message):
        check(factory)


def test_the_faults_are_in_the_components_not_the_kit():
    """The healthy parents of the broken components pass the same checks."""
    check_controller(lambda: MLPController(hidden_size=13, activation="tanh"))
    check_memory(lambda: MatrixMemory(SIZES.N, SIZES.W, init_value=0.0))


def test_skip_leaves_a_check_out_and_rejects_unknown_names():
    check_controller(LambdaController, skip=["pickle"])
    check_controller(UnusedParameterGRU, skip=["gradients", "zero_memory"])
    assert CHECKS[0] == "contract"
    with pytest.raises(ValueError, match=r"skip: unknown check names \['pickles'\]"):
        check_controller(MLPController, skip=["pickles"])


def test_components_that_need_arguments_get_an_example(monkeypatch):
    with pytest.raises(AssertionError, match=r"cannot build NeedsAWidth: its argument 'width' is required.*register_example"):
        default_factory(NeedsAWidth)
    monkeypatch.setattr(kit_defaults, "_EXAMPLES", {})
    register_example(NeedsAWidth, lambda: NeedsAWidth(width=13))
    check_component(NeedsAWidth)


def test_a_custom_harness_and_memory_are_used(monkeypatch):
    built = []

    def harness(head):
        built.append(head)
        return MemoryCell(MLPController(13), MatrixMemory(5, 3), [WriteHead(ContentAddressing()), head])

    check_head(lambda: ReadHead(ContentAddressing()), memory=lambda: MatrixMemory(5, 3), harness=harness)
    assert built and all(isinstance(h, ReadHead) for h in built)
    check_sequence_model(lambda: harness(ReadHead(ContentAddressing())))


def test_a_built_module_is_refused_with_advice():
    with pytest.raises(TypeError, match=r"needs a factory to build fresh copies, not a built MLPController; pass lambda"):
        check_controller(MLPController(13))


def test_the_kit_imports_pytest_only_inside_functions():
    """Importing mannkit.testing must not import pytest (plugins import it outside their tests too)."""
    import mannkit.testing

    for path in Path(mannkit.testing.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = {alias.name for node in top_level for alias in node.names} | {
            node.module for node in top_level if isinstance(node, ast.ImportFrom)
        }
        assert not any(name and name.split(".")[0] in ("pytest", "_pytest") for name in names), path
