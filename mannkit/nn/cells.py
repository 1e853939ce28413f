"""Composing cells: a head bound to one of several memories, a cell as a controller, cells stacked.

Shape letters: B batch, T time, I input width, O output width, H controller output size.

- :class:`OnMemory` wraps a head so that it acts on a named memory of a ``MemoryCell`` with
  several memories (``memories: {name: Memory}``); an unwrapped head acts on the cell's
  ``memory``.
- :class:`CellController` makes any :class:`~mannkit.core.interfaces.RecurrentCell` (a
  ``MemoryCell``, a :class:`StackedCells`) the controller of another cell: ``h_t`` is the inner
  cell's per-step output ``y_t [B, H]`` and the controller state is the inner cell's state.
- :class:`StackedCells` runs recurrent cells as layers in one step: layer k's output ``[B, H]``
  is layer k+1's input, the last layer gives ``[B, O]``.
- :class:`ControllerCell` is a controller alone with an output layer: the memory-less baseline
  (an LSTM, GRU or tanh RNN) that every memory model is compared with.

>>> import torch
>>> from mannkit.cell import MemoryCell
>>> from mannkit.nn import ContentAddressing, LSTMController, MatrixMemory, ReadHead, WriteHead
>>> def small_cell():
...     return MemoryCell(LSTMController(8), MatrixMemory(5, 4),
...                       [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])
>>> outer = MemoryCell(CellController(small_cell(), hidden_size=6), MatrixMemory(7, 3),
...                    [WriteHead(ContentAddressing()), ReadHead(ContentAddressing())])
>>> stacked = StackedCells([outer, small_cell()], hidden_size=9)
>>> stacked.bind(input_size=3, output_size=2)
>>> stacked(torch.zeros(4, 5, 3)).logits.shape
torch.Size([4, 5, 2])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Controller, Head, HeadOutput, Memory, RecurrentCell, SequenceOutput, State
from mannkit.core.registry import register
from mannkit.core.shapes import check_shape
from mannkit.testing.defaults import SIZES, register_example

__all__ = ["OnMemory", "CellController", "ControllerCell", "StackedCells", "named_memories", "MAIN_MEMORY"]

#: The name of a MemoryCell's ``memory`` among several (``memories`` adds others).
MAIN_MEMORY = "memory"


@register
class OnMemory(Head):
    """A head bank that acts on the memory named ``memory`` of a ``MemoryCell`` with several memories.

    Everything (count, stage, sizes, state, forward) is the wrapped head's; the cell hands this
    bank the named memory and its state. Its trace entries are drawn as ``<memory>/<entry>``.

    Args:
        memory: the name of a memory in the cell's ``memories`` (or ``memory``, the cell's main one).
        head: the head bank that acts on it.
    """

    def __init__(self, memory: str, head: Head) -> None:
        super().__init__()
        if not isinstance(memory, str) or not memory:
            raise ConfigError(f"OnMemory: memory must be the name of one of the cell's memories, got {memory!r}; e.g. memory: tape.")
        if not isinstance(head, Head) or isinstance(head, OnMemory):
            raise ConfigError(
                f"OnMemory: head must be a Head other than OnMemory, got {type(head).__name__}; give a head class_path such as ReadHead."
            )
        self.memory_name, self.head = memory, head
        self.stage = head.stage  # runs when the wrapped head would

    @property
    def count(self) -> int:
        return self.head.count

    def bind(self, memory: Memory) -> None:
        self.head.bind(memory)

    def param_size(self, memory: Memory) -> int:
        return self.head.param_size(memory)

    def read_size(self, memory: Memory) -> int:
        return self.head.read_size(memory)

    def param_bias(self, memory: Memory) -> Tensor | None:
        return self.head.param_bias(memory)

    def initial_state(self, batch_size: int, memory: Memory, device: torch.device, dtype: torch.dtype) -> State:
        return self.head.initial_state(batch_size, memory, device, dtype)

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, count, P]`` -> the wrapped head's :class:`HeadOutput`."""
        return self.head(params, memory, memory_state, state, record)


def _positive(owner: str, name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{owner}: {name} must be a positive integer, got {value!r}; set {name} to 1 or more.")


def _check_cell(owner: str, where: str, cell: object) -> None:
    if not isinstance(cell, RecurrentCell):
        raise ConfigError(
            f"{owner}: {where} is a {type(cell).__name__}, not a recurrent cell; give a class_path such as MemoryCell."
        )


@register
class CellController(Controller):
    """Any recurrent cell as a controller: ``h_t = y_t`` (or ``tanh(y_t)``), the inner cell's output at step t.

    ``forward(x [B, I], state) -> (h [B, H], state)`` is one ``cell.step``; the inner cell is bound
    to I inputs and H outputs, so its output layer is the controller's output (a linear map of the
    inner controller's output and reads, unbounded unless ``activation: tanh``). The inner cell's
    trace is not recorded.

    Args:
        cell: the inner cell, e.g. a ``MemoryCell`` with an LSTM controller and a matrix memory.
        hidden_size: H, the width of the inner cell's output, which is this controller's output.
        activation: ``none`` passes the inner output on as it is (unbounded); ``tanh`` gives
            ``h_t = tanh(y_t)``, bounded in (-1, 1) as an LSTM controller's output is.
        output_init: ``default`` leaves the inner cell's output layer as the cell made it (random);
            ``identity`` sets it to pass the inner controller's state straight through
            (``W = [I 0]``, ``b = 0``: ``y_t = h^inner_t`` on the first ``min(in, H)`` units, the
            inner reads entering with weight 0), so that the outer heads start from the inner
            controller's state as they would from a plain controller's. Needs an inner cell whose
            output layer is a ``Linear`` named ``output`` (``MemoryCell``, ``ControllerCell``).
    """

    def __init__(self, cell: RecurrentCell, hidden_size: int = 100, activation: str = "none",
                 output_init: str = "default") -> None:
        super().__init__()
        _check_cell("CellController", "cell", cell)
        _positive("CellController", "hidden_size", hidden_size)
        if activation not in ("none", "tanh"):
            raise ConfigError(
                f"CellController: activation must be 'none' or 'tanh', got {activation!r}; "
                "use tanh to bound h_t as an LSTM controller's output is."
            )
        if output_init not in ("default", "identity"):
            raise ConfigError(
                f"CellController: output_init must be 'default' or 'identity', got {output_init!r}; "
                "use identity to start the outer heads from the inner controller's state."
            )
        if output_init == "identity" and not hasattr(cell, "output"):
            raise ConfigError(
                f"CellController: output_init 'identity' needs an inner cell with an output layer named 'output', "
                f"and {type(cell).__name__} has none; use output_init: default."
            )
        self.cell, self.hidden_size, self.activation, self.output_init = cell, hidden_size, activation, output_init

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def bind(self, input_size: int) -> None:
        if self._bind_once(input_size=input_size):
            self.cell.bind(input_size, self.hidden_size)
            if self.output_init == "identity":
                _identity_output(self.cell)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        return self.cell.initial_state(batch_size, device, dtype)

    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """``x [B, I]`` -> ``(h [B, H], state)``."""
        h, state, _ = self.cell.step(x, state, False)
        return (torch.tanh(h) if self.activation == "tanh" else h), state


def _identity_output(cell: RecurrentCell) -> None:
    """Set ``cell.output`` (a Linear ``[in] -> [H]``) to ``W = [I_k 0; 0 0]``, ``b = 0`` with ``k = min(in, H)``.

    The output layers of ``MemoryCell`` and ``ControllerCell`` take the controller's state first
    (``[h_t, r_t]``), so ``y_t`` starts as ``h_t`` (its first H units when it is wider).
    """
    layer = getattr(cell, "output", None)
    if not isinstance(layer, nn.Linear):
        raise ConfigError(
            f"CellController: output_init 'identity' needs the inner cell's output layer to be a Linear, "
            f"and {type(cell).__name__}.output is a {type(layer).__name__}; use output_init: default."
        )
    k = min(layer.in_features, layer.out_features)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:k, :k] = torch.eye(k, dtype=layer.weight.dtype, device=layer.weight.device)
        if layer.bias is not None:
            layer.bias.zero_()


@register
class StackedCells(RecurrentCell):
    """Recurrent cells as layers of one step: ``y^0_t = x_t``, ``y^k_t = cell_k(y^{k-1}_t)``, output ``y^L_t``.

    Layer 1 takes the I inputs; every layer but the last gives H outputs, the last gives O. The
    state is the tuple of the layers' states. A recorded trace holds each layer's entries as
    ``layer<k>/<entry>`` (k from 0).

    Args:
        layers: the cells, bottom first (MemoryCells, other StackedCells, any RecurrentCell).
        hidden_size: H, the width passed from one layer to the next.
    """

    def __init__(self, layers: list[RecurrentCell], hidden_size: int = 100) -> None:
        super().__init__()
        if not isinstance(layers, (list, tuple)) or not layers:
            raise ConfigError(f"StackedCells: layers must be a non-empty list of cells, got {layers!r}; give at least one MemoryCell.")
        for i, layer in enumerate(layers):
            _check_cell("StackedCells", f"layers[{i}]", layer)
        _positive("StackedCells", "hidden_size", hidden_size)
        self.layers = nn.ModuleList(layers)
        self.hidden_size = hidden_size
        self._prefixes = [f"layer{k}/" for k in range(len(layers))]

    def bind(self, input_size: int, output_size: int) -> None:
        if not self._bind_once(input_size=input_size, output_size=output_size):
            return
        _positive("StackedCells", "input_size", input_size)
        _positive("StackedCells", "output_size", output_size)
        self.input_size, self.output_size = input_size, output_size
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            layer.bind(input_size if k == 0 else self.hidden_size, output_size if k == last else self.hidden_size)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> tuple:
        return tuple(layer.initial_state(batch_size, device, dtype) for layer in self.layers)

    def step(self, x: Tensor, state: tuple, record: bool = False) -> tuple[Tensor, tuple, dict[str, Tensor]]:
        """``x [B, I]`` -> ``(y [B, O], state, trace)``."""
        states = []
        trace: dict[str, Tensor] = {}
        for layer, layer_state, prefix in zip(self.layers, state, self._prefixes):
            x, layer_state, layer_trace = layer.step(x, layer_state, record)  # [B, I or H] -> [B, H or O]
            states.append(layer_state)
            for key, value in layer_trace.items():
                trace[prefix + key] = value
        return x, tuple(states), trace

    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        """``x [B, T, I]`` -> logits ``[B, T, O]`` (and a trace ``[B, T, ...]`` when ``record``)."""
        if "input_size" not in self.__dict__:
            raise ConfigError("StackedCells is not built yet; call bind(input_size, output_size) or let a system build it.")
        check_shape(x, ("B", "T", self.input_size), "StackedCells input", "the task's input width must match the model's")
        return super().forward(x, record)


@register
class ControllerCell(RecurrentCell):
    """Any controller as a recurrent cell without memory: ``h_t, c_t = controller(x_t, c_{t-1})``, ``y_t = W h_t + b``.

    The memory-less baseline beside every memory model: with an ``RNNController`` the simple RNN of
    the ACT paper's parity and logic tasks, with an ``LSTMController`` (``layers: 2``) the deep LSTM
    that Grefenstette et al. 2015 set against their stack, queue and deque. The state is the controller's.

    Args:
        controller: the controller (its input size is derived).

    >>> from mannkit.nn import RNNController
    >>> cell = ControllerCell(RNNController(8))
    >>> cell.bind(input_size=3, output_size=2)
    >>> cell(torch.zeros(4, 5, 3)).logits.shape
    torch.Size([4, 5, 2])
    """

    def __init__(self, controller: Controller) -> None:
        super().__init__()
        if not isinstance(controller, Controller):
            raise ConfigError(
                f"ControllerCell: controller is a {type(controller).__name__}, not a Controller; "
                "give a controller class_path such as RNNController."
            )
        self.controller = controller
        self.output: nn.Linear | None = None

    def bind(self, input_size: int, output_size: int) -> None:
        """Bind the controller to I inputs and create the output layer ``H -> O``."""
        if not self._bind_io(input_size, output_size):
            return
        self.controller.bind(input_size)
        self.output = nn.Linear(self.controller.output_size, output_size)

    def _require_bound(self) -> None:
        if self.output is None:
            raise ConfigError("ControllerCell is not built yet; call cell.bind(input_size, output_size) or let a system build it.")

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> State:
        self._require_bound()
        return self.controller.initial_state(batch_size, device, dtype)

    def step(self, x: Tensor, state: State, record: bool = False) -> tuple[Tensor, State, dict[str, Tensor]]:
        """``x [B, I]`` -> ``(y [B, O], state, {})``."""
        h, state = self.controller(x, state)  # h_t [B, H]
        return self.output(h), state, {}

    def forward(self, x: Tensor, record: bool = False) -> SequenceOutput:
        """``x [B, T, I]`` -> logits ``[B, T, O]``."""
        self._require_bound()
        check_shape(x, ("B", "T", self.input_size), "ControllerCell input", "the task's input width must match the model's")
        return super().forward(x, record)



# -- how the conformance kit builds these (they need partners the kit cannot guess) ------------------
def _kit_cell() -> RecurrentCell:
    from mannkit.cell import MemoryCell
    from mannkit.nn.addressing import ContentAddressing
    from mannkit.nn.controllers import LSTMController
    from mannkit.nn.heads import ReadHead, WriteHead
    from mannkit.nn.memory import MatrixMemory

    return MemoryCell(LSTMController(SIZES.H), MatrixMemory(SIZES.N, SIZES.W, init="random"),
                      [WriteHead(ContentAddressing()), ReadHead(ContentAddressing(), count=SIZES.h)])


def _on_memory_harness(head: Head) -> RecurrentCell:
    """Two memories: the main one written and read by content heads, ``aux`` written and read by ``head``'s pair."""
    from mannkit.cell import MemoryCell
    from mannkit.nn.addressing import ContentAddressing
    from mannkit.nn.controllers import MLPController
    from mannkit.nn.heads import ReadHead, WriteHead
    from mannkit.nn.memory import MatrixMemory

    return MemoryCell(
        MLPController(SIZES.H, activation="tanh"), MatrixMemory(SIZES.N, SIZES.W),
        [WriteHead(ContentAddressing()), ReadHead(ContentAddressing()), OnMemory("aux", WriteHead(ContentAddressing())), head],
        memories={"aux": MatrixMemory(SIZES.N + 2, SIZES.W)},
    )


def _kit_on_memory() -> OnMemory:
    from mannkit.nn.addressing import ContentAddressing
    from mannkit.nn.heads import ReadHead

    return OnMemory("aux", ReadHead(ContentAddressing(), count=SIZES.h))


register_example(OnMemory, _kit_on_memory, harness=_on_memory_harness)
register_example(CellController, lambda: CellController(_kit_cell(), hidden_size=SIZES.H))
register_example(StackedCells, lambda: StackedCells([_kit_cell(), _kit_cell()], hidden_size=SIZES.H))


def _kit_controller_cell() -> ControllerCell:
    from mannkit.nn.controllers import RNNController

    return ControllerCell(RNNController(SIZES.H))


register_example(ControllerCell, _kit_controller_cell)


def named_memories(memory: Memory, memories: dict[str, Memory] | None) -> dict[str, Memory]:
    """``{"memory": memory, **memories}`` for ``MemoryCell``, each checked (a Memory, a name usable as a key)."""
    if not isinstance(memory, Memory):
        raise ConfigError(f"MemoryCell: memory is a {type(memory).__name__}, not a Memory; give a memory class_path such as MatrixMemory.")
    if memories is None:
        return {MAIN_MEMORY: memory}
    if not isinstance(memories, dict):
        raise ConfigError(
            f"MemoryCell: memories must map names to memories, got {type(memories).__name__}; "
            "write e.g. memories: {tape: {class_path: MatrixMemory}}."
        )
    named = {MAIN_MEMORY: memory}
    for name, mem in memories.items():
        if not isinstance(name, str) or not name.isidentifier() or name == MAIN_MEMORY:
            raise ConfigError(
                f"MemoryCell: memories has the name {name!r}, but a name must be an identifier other than "
                f"'{MAIN_MEMORY}' (the main memory's); rename it, e.g. tape."
            )
        if not isinstance(mem, Memory):
            raise ConfigError(f"MemoryCell: memories.{name} is a {type(mem).__name__}, not a Memory; give a memory class_path.")
        named[name] = mem
    return named
