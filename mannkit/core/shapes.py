"""Shape checks at public boundaries; errors state both shapes."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mannkit.core.errors import ShapeError

__all__ = ["check_shape"]


def check_shape(tensor: Tensor, expected: Sequence[int | str | None], name: str, fix: str = "") -> None:
    """Raise :class:`ShapeError` unless ``tensor.shape`` matches ``expected``.

    ``expected`` holds ints (must match), or strings / None (any size; strings name the axis).

    >>> import torch
    >>> check_shape(torch.zeros(2, 3), ("B", 3), "x")
    >>> check_shape(torch.zeros(2, 4), ("B", 3), "x")
    Traceback (most recent call last):
    ...
    mannkit.core.errors.ShapeError: x has shape [2, 4] but [B, 3] was expected.
    """
    shape = tuple(tensor.shape)
    ok = len(shape) == len(expected) and all(not isinstance(e, int) or e == s for e, s in zip(expected, shape))
    if not ok:
        want = ", ".join("?" if e is None else str(e) for e in expected)
        got = ", ".join(str(s) for s in shape)
        raise ShapeError(f"{name} has shape [{got}] but [{want}] was expected{'; ' + fix if fix else ''}.")
