"""The base of every component, and what a recurrent state is.

A component is an ``nn.Module`` that records its config (see :mod:`mannkit.core.config`) and is
built in two stages: the constructor takes what a user types, ``bind(...)`` the sizes that follow
from the other parts (called once by the assembling module, which creates the layers eagerly so
that optimizers and DDP see every parameter).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mannkit.core.config import Configurable
from mannkit.core.errors import ConfigError

__all__ = ["State", "Component"]

State = Any
"""A NamedTuple/tuple of tensors (possibly nested, possibly empty)."""


class Component(Configurable, nn.Module):
    """Base of every component: an ``nn.Module`` that records its config (see :mod:`mannkit.core.config`)."""

    registry_kind: str | None = None

    def _bind_once(self, **sizes: int) -> bool:
        """Record bound sizes; return True the first time, False if already bound to the same sizes."""
        old = self.__dict__.get("_bound_sizes")
        if old is None:
            self.__dict__["_bound_sizes"] = dict(sizes)
            return True
        if old != sizes:
            raise ConfigError(
                f"{type(self).__name__} is already built for {old} and cannot be rebuilt for {sizes}; "
                "use a fresh component for a different size."
            )
        return False

    def _bind_io(self, input_size: int, output_size: int) -> bool:
        """:meth:`_bind_once` for a sequence model's data widths I and O, which must be positive; sets them.

        Returns True the first time (the caller then builds its layers), False if already bound alike.
        """
        if not self._bind_once(input_size=input_size, output_size=output_size):
            return False
        if input_size < 1 or output_size < 1:
            raise ConfigError(
                f"{type(self).__name__}: input_size ({input_size}) and output_size ({output_size}) must be positive; "
                "they come from the task, so check the data settings."
            )
        self.input_size, self.output_size = input_size, output_size
        return True

    @property
    def is_bound(self) -> bool:
        return "_bound_sizes" in self.__dict__

    def extra_repr(self) -> str:
        args = self.__dict__.get("_init_config", {})
        return ", ".join(f"{k}={v!r}" for k, v in args.items() if not isinstance(v, (nn.Module, list)))
