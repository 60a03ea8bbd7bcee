"""``ReIQA``: a loaded model (encoders on their engine, regressor, model card, and a diagnosis head
when its folder has one) that scores and diagnoses images.

It cannot be changed once built: ``with_options`` (another size cap), ``with_backend`` (another
engine), ``with_diagnosis`` (another diagnosis head) and ``to`` (another device) return a new
model, so a model handed to a batch job, the service or a Ray actor scores with exactly the
options its provenance records.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import Tensor

from reiqa.atomic import atomic_path, write_text_atomic
from reiqa.diagnosis import DiagnosisHead, DiagnosisRecord
from reiqa.engines import get as get_engine
from reiqa.errors import ModelError
from reiqa.features import FeatureModel, FeatureOptions, ImageSource
from reiqa.inference import pipeline
from reiqa.inference.card import ROLES, ModelCard
from reiqa.inference.onnx import on_engine
from reiqa.io import DEFAULT_MAX_PIXELS, Failure, array_to_tensor, check_images
from reiqa.outputs import ScoreRecord
from reiqa.regress import QualityRegressor

__all__ = ["ACCEPTED", "ReIQA"]

ACCEPTED = (
    "a path, a list of paths, a PIL image, a torch tensor (3, H, W) or (N, 3, H, W), or a numpy "
    "array (H, W, 3), (3, H, W), (N, H, W, 3) or (N, 3, H, W); float in [0, 1] or uint8"
)


def _is_path(value: object) -> bool:
    return isinstance(value, str | os.PathLike)


def _paths(items: Sequence[object]) -> Sequence[str | os.PathLike]:
    """A list or tuple that holds paths only (str or Path)."""
    wrong = next((p for p in items if not _is_path(p)), None)
    if wrong is not None:
        raise TypeError(
            f"a list must hold paths (str or Path), got a {type(wrong).__name__}; stack tensors "
            "or arrays into one (N, 3, H, W) batch"
        )
    return items  # type: ignore[return-value]


class ReIQA:
    """Scores images. ``score`` takes

    - a path (str or Path): a float (ImageLoadError if the file cannot be read);
    - a list or tuple of paths: an array, NaN for files that cannot be read;
    - a PIL image: a float;
    - a torch tensor (3, H, W) -> a float, (N, 3, H, W) -> an array;
    - a numpy array (H, W, 3) or (3, H, W) -> a float, (N, H, W, 3) or (N, 3, H, W) -> an array
      (a shape that fits both layouts, such as (3, 5, 3), is refused).

    Tensors and arrays are float in [0, 1] or uint8 (divided by 255); NaN, infinity, values
    outside [0, 1], other dtypes (bool, int16, ...), other channel counts and empty images are a
    ValueError, other types a TypeError. A score is always finite: where the model gives NaN or
    infinity, one image raises a ModelError and an array holds NaN. ``score_files`` yields one
    ``ScoreRecord`` per file, with the error of files that cannot be read (batch jobs go on).

    ``diagnose`` takes the same inputs and gives ``DiagnosisRecord``s (the score, the most likely
    issue, its severity, every issue's probability) when the model has a diagnosis head.
    """

    def __init__(
        self,
        features: FeatureModel,
        regressor: QualityRegressor,
        card: ModelCard,
        diagnosis: DiagnosisHead | None = None,
    ) -> None:
        # channels-last convolutions: 35 % faster on CPU (oneDNN), the layout cuDNN prefers too
        self._features = features.to(memory_format=torch.channels_last)
        self._regressor = regressor
        self._card = card
        if diagnosis is not None and diagnosis.layout != tuple(features.blocks()):
            raise ModelError(
                f"the diagnosis head was fitted on features {list(diagnosis.layout)}, these encoders give "
                f"{features.blocks()}; fit it for this model: reiqa fit-diagnosis"
            )
        self._diagnosis = diagnosis

    # -- what it is -------------------------------------------------------------------------------

    @property
    def features(self) -> FeatureModel:
        """The encoders, on their engine and device."""
        return self._features

    @property
    def regressor(self) -> QualityRegressor:
        return self._regressor

    @property
    def diagnosis(self) -> DiagnosisHead | None:
        """The diagnosis head (``diagnosis.json`` of the model folder), None when it has none."""
        return self._diagnosis

    @property
    def card(self) -> ModelCard:
        """The model card (``model.json``), with the options this model scores with."""
        return self._card

    @property
    def options(self) -> FeatureOptions:
        """How images are prepared: the size cap (``max_side``, ``min_side``) and ``compat``."""
        return self._card.features

    @property
    def name(self) -> str:
        return self._card.name

    @property
    def higher_is_better(self) -> bool:
        return self._card.score.higher_is_better

    @property
    def score_range(self) -> tuple[float, float] | None:
        return self._card.score.range

    @property
    def max_side(self) -> int | None:
        """Images whose longer side exceeds this are downscaled (antialiased) before scoring; None
        scores them at full size. ``with_options(max_side=...)`` gives a model with another cap
        (the regressor saw images up to the card's)."""
        return self.options.max_side

    @property
    def backend(self) -> str:
        """The engine that runs the encoders: a name of ``reiqa.engines.ENGINES``."""
        return self._features.engine.name

    @property
    def device(self) -> torch.device:
        return self._features.device

    @property
    def model_id(self) -> str:
        """16 hex digits over what the scores depend on: the encoders' weights, the feature
        options, the engine's precision and the regressor (mean, scale, coefficients,
        intercept)."""
        opts = self.options
        h = hashlib.sha256(self._features.model_id(max_side=opts.max_side, min_side=opts.min_side).encode())
        reg = self._regressor
        for array in (reg.mean_, reg.scale_, reg.coef_):
            h.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        h.update(repr(float(reg.intercept_)).encode())
        return h.hexdigest()[:16]

    # -- other models like it ---------------------------------------------------------------------

    def with_options(self, **changes: int | None) -> ReIQA:
        """This model with other feature options (``max_side``, ``min_side``; None: no cap), which
        change the scores of larger images and the model id. ``compat`` belongs to the encoders'
        features and cannot change here."""
        unknown = sorted(set(changes) - {"max_side", "min_side"})
        if unknown:
            raise TypeError(f"with_options takes max_side and min_side, not {', '.join(unknown)}")
        options = dataclasses.replace(self.options, **changes)  # checked by FeatureOptions
        if options == self.options:
            return self
        card = dataclasses.replace(self._card, features=options)
        return ReIQA(self._features, self._regressor, card, self._diagnosis)

    def with_backend(self, backend: str, *, onnx_dir: str | Path | None = None) -> ReIQA:
        """This model with its encoders run by ``backend`` (a name of ``reiqa.engines.ENGINES``),
        on the CPU; the ONNX graphs come from ``onnx_dir`` (``reiqa export``) or the cache. Same
        card; same model id for the float32 engines, whose scores differ only by the engine's
        arithmetic (1e-4), another for ``openvino-bf16``, whose scores move by up to a few
        points."""
        if backend == self.backend:
            return self
        if self.backend != "torch":
            raise ValueError(f"this model already runs on {self.backend}; load it again for {backend}")
        engine = get_engine(backend)
        if engine.start is None:  # torch in another arithmetic, where the model is
            return ReIQA(on_engine(self._features, engine), self._regressor, self._card, self._diagnosis)
        cpu = self.to("cpu")._features
        features = on_engine(cpu, engine, folder=Path(onnx_dir) if onnx_dir else None)
        return ReIQA(features, self._regressor, self._card, self._diagnosis)

    def with_diagnosis(self, head: DiagnosisHead | None) -> ReIQA:
        """This model with another diagnosis head (None: without one); the head must have been
        fitted on these encoders' features."""
        return ReIQA(self._features, self._regressor, self._card, head)

    def to(self, device: str | torch.device) -> ReIQA:
        """This model with its encoders on ``device`` (a new model; this one stays where it is)."""
        device = torch.device(device)
        if self._features.engine.cpu_only and device.type != "cpu":
            raise ValueError(
                f"the {self.backend} backend runs on the CPU; load with backend='torch' for {device}"
            )
        if device.type == "cuda" and device.index is None and torch.cuda.is_available():
            device = torch.device("cuda", torch.cuda.current_device())  # what torch means by 'cuda'
        if device == self.device:
            return self
        moved = copy.deepcopy(self._features).to(device)
        return ReIQA(moved, self._regressor, self._card, self._diagnosis)

    # -- scoring ----------------------------------------------------------------------------------

    def prepare(
        self, source: ImageSource, *, name: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
    ) -> Tensor | Failure:
        """One image (a path, an upload's bytes named ``name``, a tensor, array or PIL image)
        ready for :meth:`score_batch`, or the Failure of a file that cannot be read."""
        return pipeline.prepare_or_failure(source, self.options, name=name, max_pixels=max_pixels)

    def score_batch(self, names: Sequence[str], items: Sequence[Tensor | Failure]) -> list[ScoreRecord]:
        """One ScoreRecord per prepared item (:meth:`prepare`), in order."""
        return pipeline.score_batch(self._features, self._regressor, names, items)

    def score(
        self, inputs: ImageSource | Sequence[str | os.PathLike], *, batch_size: int = 8
    ) -> float | np.ndarray:
        """A float for one image, an array for several; see the class for what is accepted."""
        if isinstance(inputs, list | tuple):
            records = self.score_files(_paths(inputs), batch_size=batch_size)
            return np.array([math.nan if r.score is None else r.score for r in records])
        names, images, single = self._prepared(inputs)
        records = self.score_batch(names, images)
        if single:
            if records[0].score is None:
                raise ModelError(records[0].error)
            return records[0].score
        return np.array([math.nan if r.score is None else r.score for r in records])

    def _prepared(self, inputs: ImageSource) -> tuple[list[str], list[Tensor], bool]:
        """(names, prepared images, whether it is one image) of anything :meth:`score` takes but
        a list of paths; a file that cannot be read raises its ImageLoadError."""
        if _is_path(inputs) or isinstance(inputs, Image.Image):
            name = str(inputs) if _is_path(inputs) else "the PIL image"
            return [name], [pipeline.prepare(inputs, self.options, name=name)], True
        if isinstance(inputs, Tensor):
            images, single, what = check_images(inputs), inputs.ndim == 3, "the tensor"
        elif isinstance(inputs, np.ndarray):
            tensor, single = array_to_tensor(inputs)
            images, what = check_images(tensor, "the array"), "the array"
        else:
            raise TypeError(f"cannot score a {type(inputs).__name__}; expected {ACCEPTED}")
        if single:
            return [what], [pipeline.prepare(images[0], self.options, name=what)], True
        names = [f"{what}[{i}]" for i in range(len(images))]
        return names, [pipeline.prepare(im, self.options) for im in images], False

    def score_files(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int = 8,
        workers: int = 0,
        progress: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> Iterator[ScoreRecord]:
        """One ScoreRecord per path, in order: decoded in ``workers`` processes, in batches of
        ``batch_size`` files. Files over ``max_pixels`` (width x height, checked before
        decoding) are refused."""
        return pipeline.score_files(
            self._features,
            self._regressor,
            self.options,
            paths,
            batch_size=batch_size,
            workers=workers,
            progress=progress,
            max_pixels=max_pixels,
        )

    # -- diagnosing ------------------------------------------------------------------------------

    def _head(self) -> DiagnosisHead:
        if self._diagnosis is None:
            raise ModelError(
                f"{self.name}: this model has no diagnosis head (no diagnosis.json in its folder); fit "
                "one on photos of your own: reiqa fit-diagnosis PHOTOS... --model DIR -o NEW_DIR"
            )
        return self._diagnosis

    def diagnose_batch(
        self, names: Sequence[str], items: Sequence[Tensor | Failure]
    ) -> list[DiagnosisRecord]:
        """One DiagnosisRecord per prepared item (:meth:`prepare`), in order."""
        return pipeline.diagnose_batch(self._features, self._regressor, self._head(), names, items)

    def diagnose(
        self, inputs: ImageSource | Sequence[str | os.PathLike], *, batch_size: int = 8
    ) -> DiagnosisRecord | list[DiagnosisRecord]:
        """What is most likely wrong: a DiagnosisRecord for one image (its errors raised, as
        :meth:`score` does), a list for several (a list of paths: the errors of files that cannot
        be read in their records). Takes what :meth:`score` takes.

        Raises:
            ModelError: the model has no diagnosis head (fit one with ``reiqa fit-diagnosis``).
        """
        head = self._head()
        if isinstance(inputs, list | tuple):
            return list(self.diagnose_files(_paths(inputs), batch_size=batch_size))
        names, images, single = self._prepared(inputs)
        records = pipeline.diagnose_batch(self._features, self._regressor, head, names, images)
        if single and records[0].score is None:
            raise ModelError(records[0].error)
        return records[0] if single else records

    def diagnose_files(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int = 8,
        workers: int = 0,
        progress: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> Iterator[DiagnosisRecord]:
        """One DiagnosisRecord per path, in order (:meth:`score_files` with the head)."""
        return pipeline.diagnose_files(
            self._features,
            self._regressor,
            self._head(),
            self.options,
            paths,
            batch_size=batch_size,
            workers=workers,
            progress=progress,
            max_pixels=max_pixels,
        )

    # -- storage ----------------------------------------------------------------------------------

    def save(self, directory: str | Path, *, half: bool = True) -> Path:
        """Write the model folder (``reiqa.inference.load`` reads it back); ``half`` stores the
        encoder weights as float16. Each file appears whole."""
        if self.backend != "torch":
            raise ValueError(
                f"a model on the {self.backend} backend has no torch weights to save; save the torch one"
            )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for role in ROLES:
            backbone, spec = getattr(self._features, role), self._card.encoder(role)
            if backbone is None or spec is None:
                continue
            state = {
                k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
                for k, v in backbone.state_dict().items()
            }
            with atomic_path(directory / spec.file) as tmp:
                save_file(state, str(tmp))
        self._regressor.save(directory)
        if self._diagnosis is not None:
            self._diagnosis.save(directory)
        write_text_atomic(directory / "model.json", json.dumps(self._card.to_dict(), indent=2))
        return directory
