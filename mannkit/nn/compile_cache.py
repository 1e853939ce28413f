"""Where torch's compile caches live, so that a compiled step is compiled once per machine, not once per run.

``MemoryCell`` (``compile: true`` or ``auto``) calls :func:`use_compile_cache` before its first compile;
the README's "Speed without settings" tells users what a cold and a warm compile cost.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import Tensor

from mannkit.core.errors import ConfigError

__all__ = ["compile_cache_dir", "use_compile_cache", "user_set_torch_cache", "with_backward_compiled_now"]


def compile_cache_dir() -> Path | None:
    """Where torch's compile caches (Inductor's FX graph cache, the AOTAutograd cache) live across runs.

    ``$TORCHINDUCTOR_CACHE_DIR`` if set; else ``$MANNKIT_CACHE_DIR/torchinductor``, else
    ``$XDG_CACHE_HOME/mannkit/torchinductor`` or ``~/.cache/mannkit/torchinductor`` (a per-user cache
    that survives reboots, unlike torch's default under /tmp). ``MANNKIT_CACHE_DIR=none`` leaves
    torch's default alone and returns None.
    """
    if user_set_torch_cache():
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    root = os.environ.get("MANNKIT_CACHE_DIR", "")
    if root.lower() == "none":
        return None
    if root:
        base = Path(root).expanduser()
        if base.exists() and not base.is_dir():
            raise ConfigError(
                f"MANNKIT_CACHE_DIR is {root!r}, which is a file, not a folder; point it at a folder, "
                "or set it to none to keep torch's own compile cache."
            )
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mannkit"
    return base / "torchinductor"


def user_set_torch_cache() -> bool:
    """Whether ``$TORCHINDUCTOR_CACHE_DIR`` is set, and not just to the /tmp default torch writes there itself on import."""
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not current:
        return False
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:  # another torch layout: take the setting as the user's
        return True
    return os.path.abspath(current) != os.path.abspath(default_cache_dir())


def use_compile_cache() -> None:
    """Point torch's compile caches at :func:`compile_cache_dir` before the first compile (if it can be made)."""
    path = compile_cache_dir()
    if path is None or user_set_torch_cache():
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: torch's default (/tmp) still caches, within this boot
        return
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)


def with_backward_compiled_now(fn: Any, x: Tensor, state: Any) -> Any:
    """``fn(x, state, False)`` with AOTAutograd told to compile any new graph's backward at once."""
    import torch._functorch.config as functorch_config

    before = functorch_config.force_non_lazy_backward_lowering
    functorch_config.force_non_lazy_backward_lowering = True
    try:
        return fn(x, state, False)
    finally:
        functorch_config.force_non_lazy_backward_lowering = before
