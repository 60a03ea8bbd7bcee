"""Scoring with a Re-IQA model: where an image becomes a score.

- ``folder``: ``load`` a model folder (or the embedded default), ``assemble`` / ``make_bundle``
  one;
- ``model``: ``ReIQA``, the loaded model (immutable: ``with_options``, ``with_backend``,
  ``with_diagnosis`` and ``to`` return new ones), which scores and, with a diagnosis head
  (``reiqa.diagnosis``), diagnoses;
- ``pipeline``: the two steps every scoring path takes, ``prepare`` and ``score_batch``;
- ``card``: the model card; ``onnx``: the encoders as ONNX graphs for the other engines
  (``reiqa.engines``).
"""

from reiqa.diagnosis import DiagnosisRecord
from reiqa.inference.card import EncoderSpec, ModelCard, ScoreSpec
from reiqa.inference.folder import assemble, load, make_bundle, model_folder
from reiqa.inference.model import ReIQA
from reiqa.outputs import ScoreRecord

__all__ = [
    "DiagnosisRecord",
    "EncoderSpec",
    "ModelCard",
    "ReIQA",
    "ScoreRecord",
    "ScoreSpec",
    "assemble",
    "load",
    "make_bundle",
    "model_folder",
]
