"""One memory hop of an End-to-End Memory Network, as an addressing, a head and a controller.

Shape letters: B batch, N memory slots (sentences), W (= D) word size, h heads of a bank,
P parameters per head, I controller input width, H controller width.

A hop (Sukhbaatar et al. 2015, sec. 2.1-2.2) is three pieces, each behind a mannkit interface:

- addressing, eq. 1: ``p_i = softmax_i(u^T m_i)`` (:class:`DotProductAddressing`, or any other);
- a read, eq. 2: ``o = sum_i p_i c_i`` (:class:`HopReadHead`, through the memory's ``read``);
- the controller step between hops: ``u^{k+1} = u^k + o^k`` (adjacent tying) or
  ``u^{k+1} = H u^k + o^k`` (layer-wise tying) (:class:`HopController`).

Linear start (sec. 4.2) removes the softmax of eq. 1: the head then uses the raw scores
``p_i = u^T m_i`` at real slots and 0 at padded ones (:func:`linear_weights`), which needs an
addressing that exposes its raw scores through a ``scores(params, memory_state)`` method.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mannkit.core.errors import ConfigError
from mannkit.core.interfaces import Addressing, Controller, Head, HeadOutput, Memory, State, slot_mask
from mannkit.core.registry import register
from mannkit.nn.addressing import DotProductAddressing
from mannkit.nn.addressing import dot_product_scores as dot_scores  # u^T m_i (eq. 1), re-exported for this plugin's API
from mannkit_memn2n.encoding import INIT_STD

__all__ = ["DotProductAddressing", "HopReadHead", "HopController", "dot_scores", "linear_weights", "has_scores"]


def linear_weights(scores: Tensor, mask: Tensor | None) -> Tensor:
    """The weights of linear start: the raw scores at real slots, exactly 0 at padded ones (no softmax).

    Args:
        scores: ``[B, h, N]``.
        mask: bool ``[B, N]`` or None (every slot real).

    >>> linear_weights(torch.tensor([[[2.0, -1.0, 5.0]]]), torch.tensor([[True, True, False]])).tolist()
    [[[2.0, -1.0, 0.0]]]
    """
    if mask is None:
        return scores
    return scores * mask.unsqueeze(1).to(scores.dtype)  # [B, N] -> [B, 1, N]


def has_scores(addressing: Addressing) -> bool:
    """Whether ``addressing`` exposes raw scores (``scores(params, memory_state) -> [B, h, N]``) for linear start."""
    return callable(getattr(addressing, "scores", None))


def _linear_refused(addressing: Addressing) -> ConfigError:
    return ConfigError(
        f"linear_start needs an addressing with raw scores, but {type(addressing).__name__} has no scores() method; "
        "use DotProductAddressing (the default) or set linear_start to false."
    )


@register
class HopReadHead(Head):
    """One read head that needs only a memory with ``read``: ``o = sum_i p_i c_i`` (MemN2N eq. 2).

    The weights come from the addressing, or, in linear mode (MemN2N's linear start), from the
    addressing's raw scores, masked to 0 at padded slots and not normalised (:func:`linear_weights`).
    The mode is a persistent buffer, so a checkpoint taken after linear start ended resumes without it.

    Args:
        addressing: how the head finds sentences (default :class:`DotProductAddressing`).
        linear: start in linear mode (the addressing must have ``scores``).
    """

    stage = 1
    needs = ("read",)

    def __init__(self, addressing: Addressing | None = None, linear: bool = False) -> None:
        super().__init__()
        addressing = DotProductAddressing() if addressing is None else addressing
        if not isinstance(addressing, Addressing):
            raise ConfigError(
                f"HopReadHead: addressing must be an Addressing component, got {type(addressing).__name__}; "
                "give a class_path such as DotProductAddressing."
            )
        self.addressing = addressing
        self.register_buffer("linear", torch.tensor(False))
        self.set_linear(linear)

    def set_linear(self, flag: bool) -> None:
        """Switch linear mode on (raw scores) or off (the addressing's weights)."""
        if flag and not has_scores(self.addressing):
            raise _linear_refused(self.addressing)
        self.linear.fill_(bool(flag))

    @property
    def count(self) -> int:
        return 1

    def bind(self, memory: Memory) -> None:
        if not callable(getattr(memory, "read", None)):
            raise ConfigError(
                f"HopReadHead needs a memory with read (such as StoryMemory or MatrixMemory), but the memory is "
                f"{type(memory).__name__}; use a head made for {type(memory).__name__}."
            )
        self.addressing.bind(memory)

    def param_size(self, memory: Memory) -> int:
        return self.addressing.param_size(memory)

    def read_size(self, memory: Memory) -> int:
        return memory.word_size

    def initial_state(self, batch_size: int, memory: Memory, device: torch.device, dtype: torch.dtype) -> State:
        return self.addressing.initial_state(batch_size, 1, memory, device, dtype)

    def forward(self, params: Tensor, memory: Memory, memory_state: State, state: State, record: bool = False) -> HeadOutput:
        """``params [B, 1, P]`` -> reads ``[B, 1, W]``; the trace holds ``read_weights [B, 1, N]``."""
        if bool(self.linear):
            weights = linear_weights(self.addressing.scores(params, memory_state), slot_mask(memory_state))
        else:
            weights, state = self.addressing(params, memory_state, state)
        reads = memory.read(weights, memory_state)
        return HeadOutput(reads, memory_state, state, {"read_weights": weights} if record else {})


@register
class HopController(Controller):
    """The update of the query between hops: ``u^{k+1} = u^k + o^k``, or ``H u^k + o^k`` with ``linear_map``.

    The state is ``u [B, H]`` (MemN2N starts it at the question's embedding); the input is the
    read ``o [B, I]``, used as is when ``I == H`` and through a learned map ``[H, I]`` otherwise.
    The output is the new ``u``.

    Args:
        hidden_size: H, the width of u (MemN2N's embedding width).
        linear_map: learn ``H`` (layer-wise tying, sec. 2.2); else H is the identity (adjacent tying).
    """

    def __init__(self, hidden_size: int = 20, linear_map: bool = False) -> None:
        super().__init__()
        if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
            raise ConfigError(
                f"HopController: hidden_size must be a positive integer, got {hidden_size!r}; set it to 1 or more."
            )
        self.hidden_size, self.linear_map = hidden_size, linear_map
        self.mix = nn.Linear(hidden_size, hidden_size, bias=False) if linear_map else None  # H: [H, H]
        if self.mix is not None:
            nn.init.normal_(self.mix.weight, std=INIT_STD)
        self.input_map: nn.Linear | None = None

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def bind(self, input_size: int) -> None:
        if self._bind_once(input_size=input_size) and input_size != self.hidden_size:
            self.input_map = nn.Linear(input_size, self.hidden_size, bias=False)
            nn.init.normal_(self.input_map.weight, std=INIT_STD)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """``o [B, I]``, ``u [B, H]`` -> ``(u', u')`` with ``u' = H u + o``."""
        read = x if self.input_map is None else self.input_map(x)
        mixed = state if self.mix is None else self.mix(state)  # H u
        u = mixed + read  # u^{k+1} = H u^k + o^k
        return u, u
