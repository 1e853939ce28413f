"""The names metrics are logged under, shared by the systems that log them and the callbacks that read them."""

from __future__ import annotations

__all__ = ["test_metric_key"]


def test_metric_key(test_set: str, metric: str) -> str:
    """The logged name of a test metric: ``test/<set>/<metric>``, or ``test/<metric>`` for a single set named ``test``.

    >>> test_metric_key("len40", "bits_per_seq"), test_metric_key("test", "seq_accuracy")
    ('test/len40/bits_per_seq', 'test/seq_accuracy')
    """
    return f"test/{metric}" if test_set == "test" else f"test/{test_set}/{metric}"
