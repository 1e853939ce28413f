"""The conformance checks of a :class:`~mannkit.core.interfaces.QAModel` (story and question -> answer logits).

Shape letters: B batch, N sentences of a story, L words per sentence, Q question words, V vocabulary,
A answers. The model is bound to :data:`QA_SIZES`; the model-level checks are those of
:mod:`mannkit.testing.conformance`, with a story that holds no sentence as the zero memory.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from mannkit.testing.conformance import _factory_of, _where
from mannkit.testing.model_checks import _run_checks, _Subject
from mannkit.testing.contracts import SEED, Where, fail, shape_of
from mannkit.testing.defaults import SIZES

__all__ = ["QA_SIZES", "check_qa_model", "qa_model_contract"]


#: The sizes a QA model is bound to by the kit (distinct from each other and from the batch of 3).
QA_SIZES = {"vocab_size": 17, "answer_size": 5, "max_sentences": 7, "sentence_length": 4, "question_length": 6}


def _qa_batch(zero: bool, generator_seed: int = 0) -> tuple[Tensor, Tensor]:
    """A fixed story ``[B, N, L]`` (the last sentences unused, the last words padding) and question ``[B, Q]``.

    With ``zero`` the story holds no sentence at all (an empty memory)."""
    generator = torch.Generator().manual_seed(generator_seed)
    B, N, L, Q, V = SIZES.B, QA_SIZES["max_sentences"], QA_SIZES["sentence_length"], QA_SIZES["question_length"], QA_SIZES["vocab_size"]
    story = torch.randint(1, V, (B, N, L), generator=generator)
    story[:, :, -1] = 0  # right padding inside sentences
    story[:, N - 2 :] = 0  # unused sentence slots after the real ones
    question = torch.randint(1, V, (B, Q), generator=generator)
    question[:, -1] = 0
    return (torch.zeros_like(story) if zero else story), question


def _run_qa(model: nn.Module, x: Tensor, zero: bool) -> Tensor:
    """Scores ``[B, A]`` (``[B, A + 1]`` with ``rest``) on the kit's fixed story (``x`` only carries the dtype; QA
    inputs are word ids)."""
    story, question = _qa_batch(zero)
    return model(story, question).scores()


def qa_answer_words() -> Tensor:
    """The kit's answer words ``[A, 2]`` (0-padded), as bAbI has them: class a < A-1 is the single word ``2 + a``, the
    last class a two-word list (``n,w`` of task 19), words ``A + 1`` and ``2``.

    >>> qa_answer_words().tolist()
    [[2, 0], [3, 0], [4, 0], [5, 0], [6, 2]]
    """
    A = QA_SIZES["answer_size"]
    words = torch.zeros(A, 2, dtype=torch.long)
    words[:, 0] = torch.arange(2, 2 + A)
    words[-1, 1] = 2
    return words


def _bind_qa(model: nn.Module) -> None:
    """Bind to :data:`QA_SIZES`, with :func:`qa_answer_words` when ``bind`` takes ``answer_words`` (as QASystem does)."""
    extra = {"answer_words": qa_answer_words()} if "answer_words" in inspect.signature(model.bind).parameters else {}
    model.bind(**QA_SIZES, **extra)


def qa_model_contract(factory: Callable[[], nn.Module], where: Where) -> None:
    """Shapes and dtypes of a QA model on a story and on an empty story, in float32 and float64."""
    B, A, N = SIZES.B, QA_SIZES["answer_size"], QA_SIZES["max_sentences"]
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(SEED)
        model = factory()
        _bind_qa(model)
        model.to(dtype)
        for zero in (False, True):
            story, question = _qa_batch(zero)
            out = model(story, question, record=True)
            what = "an empty story" if zero else f"a story of {N - 2} sentences"
            if tuple(out.logits.shape) != (B, A):
                fail(where.label, where.check, f"forward on {what} gives logits of shape {shape_of(out.logits)} but "
                     f"[B, A] = [{B}, {A}] was expected.")
            if out.logits.dtype != dtype:
                fail(where.label, where.check, f"forward gives {out.logits.dtype} logits for {dtype} parameters.")
            if not torch.isfinite(out.logits).all():
                fail(where.label, where.check, f"the logits hold NaN or inf on {what}.")
            rest = getattr(out, "rest", None)
            if rest is not None and (tuple(rest.shape) != (B,) or rest.dtype != dtype or not torch.isfinite(rest).all()):
                fail(where.label, where.check, f"rest (the log-sum-exp of the outputs that are no answer) must be finite "
                     f"[B] = [{B}] {dtype}, but it is {shape_of(rest)} {rest.dtype} on {what}.")
            for key, value in (out.trace or {}).items():
                if not (isinstance(value, Tensor) and value.shape[0] == B):
                    fail(where.label, where.check, f"trace['{key}'] has shape {shape_of(value)}; recorded tensors are [B, ...].")


def check_qa_model(target: Any, *, skip: Iterable[str] = ()) -> None:
    """Check a :class:`~mannkit.core.interfaces.QAModel`: ``story [B, N, L]``, ``question [B, Q]`` -> logits ``[B, A]``.

    The model is bound to :data:`QA_SIZES`; ``zero_memory`` is a story with no sentence at all.

    Args:
        target: a factory, a class or a registered name.
        skip: names of checks to leave out.
    """
    factory, name = _factory_of(target)
    label = f"QA model {name}"
    subject = _Subject(label, factory, lambda m: m, _bind_qa, _run_qa, False)
    _run_checks(subject, lambda zero: None if zero else qa_model_contract(factory, _where(label, zero)), skip)
