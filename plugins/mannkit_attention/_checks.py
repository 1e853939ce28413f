"""One-sentence checks of constructor arguments shared by the attention addressings."""

from __future__ import annotations

from mannkit.core.errors import ConfigError


def check_bool(owner: str, name: str, value: object) -> None:
    """Raise a one-sentence :class:`ConfigError` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}: {name} must be true or false, got {value!r}; set {name} to true or false.")


def check_positive_int(owner: str, name: str, value: object) -> None:
    """Raise a one-sentence :class:`ConfigError` unless ``value`` is an int of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{owner}: {name} must be a positive integer, got {value!r}; set {name} to 1 or more.")


def memory_slots(owner: str, memory: object, why: str) -> int:
    """N of ``memory`` (its ``slots``), or a one-sentence :class:`ConfigError` saying ``owner`` needs it for ``why``."""
    slots = getattr(memory, "slots", None)
    if isinstance(slots, bool) or not isinstance(slots, int):
        raise ConfigError(
            f"{owner} needs a memory with a fixed number of slots (such as MatrixMemory) {why}, but the memory is "
            f"{type(memory).__name__}, which has no slots; use a matrix memory or ScaledDotProductAddressing."
        )
    return slots


def check_bound(owner: str, module: object) -> None:
    """Raise a one-sentence :class:`ConfigError` if ``module`` has not been bound to a memory yet."""
    if not getattr(module, "is_bound", False):
        raise ConfigError(
            f"{owner} is not built yet; call bind(memory) before forward (ReadHead, WriteHead and MemoryCell do this)."
        )
