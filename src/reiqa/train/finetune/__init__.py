"""``reiqa finetune``: supervised fine-tuning of a model's encoders and regressor on opinion
scores, end to end.

It starts from a model folder (``reiqa.load``): its two encoders make the feature vector as the
model makes it, and a linear head starts as the model's regressor, so step 0 scores what the model
scores. Batches come from one labelled database at a time, with scores as z-scores of that
database; the loss is a pairwise ranking hinge within the batch, plus the squared error on the
z-scores, plus a hinge asking crops to score above their copies degraded by the distortion engine.
After every epoch the validation rows are scored whole, as scoring does, and the checkpoint with
the best worse-database SRCC becomes a model folder that ``reiqa.load`` and ``reiqa score --model``
read.

- ``config``: ``FinetuneConfig`` (the recipe, JSON via ``reiqa.schema``), ``config_from_options``;
- ``data``: databases, training and validation rows, the per-database batch sampler, crops;
- ``scorer``: the differentiable model, the losses, the model folder it becomes;
- ``validate``: scoring the validation rows whole, SRCC / PLCC per database;
- ``state``: what a run reads and changes, AdamW and its schedule, the checkpoint;
- ``loop``: ``run`` (resumable, AMP, TensorBoard, progress bar, time limit) and ``train_step``.
"""

from reiqa.train.finetune.config import Database, FinetuneConfig, config_from_options
from reiqa.train.finetune.loop import FinetuneResult, run

__all__ = ["Database", "FinetuneConfig", "FinetuneResult", "config_from_options", "run"]
