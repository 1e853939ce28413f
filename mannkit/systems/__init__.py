"""Generic LightningModules (systems) that train any model of the right kind."""

from mannkit.systems.meta import MetaSystem, QueryCurve
from mannkit.systems.meta_models import FewShotConvNet, FewShotMLP
from mannkit.systems.qa import BagOfWordsQA, QASystem, answer_loss
from mannkit.systems.sequence import SequenceSystem, masked_bce_loss

__all__ = [
    "SequenceSystem", "masked_bce_loss", "QASystem", "BagOfWordsQA", "answer_loss",
    "MetaSystem", "QueryCurve", "FewShotMLP", "FewShotConvNet",
]
