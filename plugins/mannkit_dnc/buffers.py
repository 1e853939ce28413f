"""Reusable ``[B, N, N]`` buffers for the link matrix and its gradient (CPU, Linux huge pages).

Shape letters: B batch, N memory slots.

A DNC step needs a new link matrix every step (each one is kept for the backward pass), and the
kernel's first touch of fresh memory costs more than the arithmetic that fills it; these helpers
hand out buffers whose pages were touched before (:func:`_empty_link`, :func:`_scratch`) and mark
the gradient buffers a temporal step may overwrite (:func:`_own`, :func:`_owned`). For the
smaller tensors of a step, :func:`keep_freed_memory` asks glibc's malloc not to hand freed memory
back to the kernel.
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import sys
import threading
from collections.abc import Callable

import torch
from torch import Tensor

_HUGE_PAGE = 2 << 20  # bytes in one transparent huge page on Linux (x86-64 and arm64 with 4K pages)
_MADV_HUGEPAGE = 14
_madvise: Callable[..., int] | None = None


#: at most this many ``[B, N, N]`` buffers of one shape are kept for reuse (see :func:`_empty_link`),
#: or as many as fit in :data:`_POOL_BYTES` if that is more
_POOL_SIZE = 16
_POOL_BYTES = 1 << 30
_pool: dict[tuple, list[Tensor]] = {}


def _in_use(base: Tensor) -> bool:
    """Whether a view of the pooled ``base`` is still alive (autograd's saved tensors hold views too).

    Counts the storage's references through a private torch function; :func:`_empty_link` keeps no
    pool on a torch without it (every request a fresh buffer: slower at large N, never wrong).
    """
    return torch._C._storage_Use_Count(base.untyped_storage()._cdata) > 2  # base's own + this call's wrapper


def _empty_link(like: Tensor, shape: tuple[int, ...]) -> Tensor:
    """An uninitialised ``[B, N, N]`` buffer, reused from a pool where one is free; on Linux, on huge pages.

    A new link matrix is needed every step (each one is kept for the backward pass), and the
    kernel's first touch of fresh memory (zero-filling 4 KiB pages, or compacting memory for huge
    ones on a busy machine) costs more than the arithmetic that fills it. So a buffer of at least
    two huge pages is handed out as a view of a pooled base tensor: once every view of it is gone
    (the step's autograd graph freed, a checkpointed segment's links dropped), the next request
    reuses its already-touched pages. Up to :data:`_POOL_SIZE` bases per shape are kept, or
    :data:`_POOL_BYTES` of them (a link per step beyond them is ordinary memory); new bases ask for transparent huge pages with
    ``madvise(MADV_HUGEPAGE)``, a hint that changes nothing where huge pages are off.
    """
    size = math.prod(shape) * like.element_size()
    if like.device.type != "cpu" or size < 2 * _HUGE_PAGE or torch.compiler.is_compiling():
        return torch.empty(shape, dtype=like.dtype, device=like.device)  # (a compiled step plans its own buffers)
    if not hasattr(torch._C, "_storage_Use_Count"):  # a torch that cannot say when a buffer is free again
        return _huge_page_buffer(like, shape)
    bases = _pool.setdefault((shape, like.dtype), [])
    for base in bases:
        if not _in_use(base):
            return base.view(shape)
    buffer = _huge_page_buffer(like, shape)
    if len(bases) < max(_POOL_SIZE, _POOL_BYTES // size):
        bases.append(buffer)
        return buffer.view(shape)
    return buffer


def _huge_page_buffer(like: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``torch.empty(shape)``, advised onto transparent huge pages on Linux."""
    global _madvise
    buffer = torch.empty(shape, dtype=like.dtype, device=like.device)
    if not sys.platform.startswith("linux"):
        return buffer
    if _madvise is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            _madvise = libc.madvise
        except (OSError, AttributeError):
            _madvise = lambda *_: -1  # noqa: E731  (no libc madvise: keep ordinary pages)
    size = buffer.numel() * buffer.element_size()
    start = (buffer.data_ptr() + _HUGE_PAGE - 1) & ~(_HUGE_PAGE - 1)  # whole huge pages inside the buffer
    end = (buffer.data_ptr() + size) & ~(_HUGE_PAGE - 1)
    _madvise(start, end - start, _MADV_HUGEPAGE)
    return buffer


_scratch_buffers = threading.local()


def _scratch(like: Tensor, shape: tuple[int, ...]) -> Tensor:
    """A temporary ``shape`` buffer kept for the next call (this thread's; contents undefined).

    The backward's chunk-sized temporary would otherwise be fresh memory on every call, and the
    kernel's first touch of fresh pages (zero-filling, huge-page compaction) costs as much as the
    arithmetic done in it. One buffer per (shape, dtype, device) is kept, per thread.
    """
    if like.device.type != "cpu" or torch.compiler.is_compiling():
        return torch.empty(shape, dtype=like.dtype, device=like.device)  # (a compiled step plans its own buffers)
    cache = getattr(_scratch_buffers, "cache", None)
    if cache is None:
        cache = _scratch_buffers.cache = {}
    key = (shape, like.dtype, like.device)
    buffer = cache.get(key)
    if buffer is None:
        cache.clear()  # keep one shape only: a new size replaces the old buffer
        buffer = cache[key] = _huge_page_buffer(like, shape)
    return buffer


def _own(grad: Tensor) -> None:
    """Mark a gradient buffer as made by a temporal step (so the previous step may reuse it)."""
    grad._mannkit_dnc_link_grad = True  # type: ignore[attr-defined]


def _owned(grad: Tensor) -> bool:
    """Whether ``grad`` is a buffer a temporal step made, which autograd hands on unshared.

    Autograd adds a second gradient into a buffer in place only when nothing else holds it, and
    otherwise makes a new (unmarked) tensor, so a marked contiguous buffer is free to overwrite.
    """
    return getattr(grad, "_mannkit_dnc_link_grad", False) and grad.is_contiguous()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
#: kept below the heap top before glibc returns it to the kernel (then every later step would fault it in again)
TRIM_THRESHOLD = 512 << 20
#: allocations up to this size come from the heap (reusable) instead of their own mmap (fresh pages each time)
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit
_malloc_tuned: bool | None = None  # None: not tried yet


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (once per process); whether the setting is in force.

    A DNC training step on CPU allocates and frees dozens of ``[B, N, W]`` tensors and saves one
    memory matrix per time step; with glibc's defaults each of them above 128 KiB is either its
    own ``mmap`` or comes from a heap top that is trimmed back to the kernel once the step's graph
    is freed, so the next step touches fresh pages again: at N = 256 about 10,000 page faults and
    a fifth of the step's CPU time (issue 16). ``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` and
    ``mallopt(M_TRIM_THRESHOLD, 512 MiB)`` keep that memory in the process instead. It is
    process-wide: freed memory up to 512 MiB stays resident (a training process's resident size
    stays near its peak, as it would with jemalloc or tcmalloc).

    Skipped (returns False) off Linux/glibc, where ``MALLOC_MMAP_THRESHOLD_`` or
    ``MALLOC_TRIM_THRESHOLD_`` is already set (the user's own choice wins), or with
    ``MANNKIT_MALLOC_TUNING=0``. :class:`~mannkit_dnc.memory.DNCMemory` calls it when it makes a
    state on CPU.
    """
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    _malloc_tuned = False
    if os.environ.get("MANNKIT_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(os.environ.get(name) for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _malloc_tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        pass
    return _malloc_tuned
