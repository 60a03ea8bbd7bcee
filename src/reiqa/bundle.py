"""A Re-IQA model bundle: encoders + regressor -> a quality score per image.

A bundle is a folder::

    model.json              format, name, encoders (arch, input_norm), score range and direction,
                            feature options
    quality.safetensors     quality encoder backbone (float16 or float32)
    content.safetensors     content encoder backbone (optional)
    regressor.json / regressor.safetensors

``reiqa.load()`` returns the embedded default model (when the package ships one),
``reiqa.load(path)`` a user's bundle. Nothing is downloaded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from reiqa.errors import ReiqaError
from reiqa.features import DecodedImages, FeatureModel, cap_size, collate_list
from reiqa.io import DEFAULT_MAX_PIXELS, load_image
from reiqa.models.backbones import build_backbone
from reiqa.models.checkpoints import load_state_strict
from reiqa.regress import QualityRegressor

FORMAT = "reiqa-model-1"
#: images of one size that go through the encoders together, at most this many pixels in all
#: (eight 500x500, two 1024x768; a 12 Mpx photo alone)
MAX_PIXELS_PER_FORWARD = 2**21


class ModelError(ReiqaError, ValueError):
    """A model bundle is missing files or does not fit together."""


@dataclass
class ScoreRecord:
    path: str
    score: float | None
    error: str | None = None


def _load_backbone(path: Path, arch: str) -> torch.nn.Module:
    if not path.is_file():
        raise ModelError(f"{path}: missing encoder weights")
    backbone = build_backbone(arch)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    load_state_strict(backbone, state, path)
    return backbone


class ReIQA:
    """Scores images. ``score`` takes a path, a list of paths, or a tensor ((3, H, W) or
    (N, 3, H, W) float in [0, 1]) and returns a float or an array; ``score_files`` yields one
    record per file, with the error of files that cannot be read (batch jobs go on)."""

    def __init__(self, features: FeatureModel, regressor: QualityRegressor, meta: dict[str, Any]) -> None:
        # channels-last convolutions: 35 % faster on CPU (oneDNN), the layout cuDNN prefers too
        self.features = features.to(memory_format=torch.channels_last)
        self.regressor = regressor
        self.meta = meta
        self.device = torch.device("cpu")

    # -- properties from the card -------------------------------------------------------------

    @property
    def higher_is_better(self) -> bool:
        return bool(self.meta.get("score", {}).get("higher_is_better", True))

    @property
    def score_range(self) -> tuple[float, float] | None:
        r = self.meta.get("score", {}).get("range")
        return (float(r[0]), float(r[1])) if r else None

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "reiqa model"))

    @property
    def max_side(self) -> int | None:
        """Images whose longer side exceeds this are downscaled (antialiased) before scoring;
        None scores them at full size. The model card sets it; setting it changes the scores of
        larger images (the regressor saw images up to this size)."""
        return self.meta.get("features", {}).get("max_side")

    @max_side.setter
    def max_side(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"max_side must be a positive number of pixels or None, got {value}")
        self.meta = {**self.meta, "features": {**self.meta.get("features", {}), "max_side": value}}

    def to(self, device: str | torch.device) -> ReIQA:
        self.device = torch.device(device)
        self.features = self.features.to(self.device)
        return self

    # -- scoring --------------------------------------------------------------------------------

    def _prepare(self, image: Tensor) -> Tensor:
        opts = self.meta.get("features", {})
        return cap_size(image, max_side=opts.get("max_side"), min_side=opts.get("min_side"))

    @torch.inference_mode()
    def score_tensor(self, images: Tensor) -> np.ndarray:
        """(N, 3, H, W) float in [0, 1], one size -> (N,) float64 scores."""
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (3, H, W) or (N, 3, H, W), got {tuple(images.shape)}")
        prepared = torch.stack([self._prepare(im) for im in images.float()]) if images.shape[0] else images
        return self._score_prepared(prepared)

    @torch.inference_mode()
    def _score_prepared(self, images: Tensor) -> np.ndarray:
        """Scores of (N, 3, H, W) images already capped by the model's size options."""
        x = images.to(self.device).contiguous(memory_format=torch.channels_last)
        return self.regressor.predict(self.features(x).cpu().numpy())

    def score(
        self, inputs: str | Path | Sequence[str | Path] | Tensor, *, batch_size: int = 8
    ) -> float | np.ndarray:
        """A path gives a float (ImageLoadError if unreadable); a list of paths an array with NaN
        for unreadable files; a tensor an array (a float for (3, H, W))."""
        if isinstance(inputs, Tensor):
            out = self.score_tensor(inputs)
            return float(out[0]) if inputs.ndim == 3 else out
        if isinstance(inputs, str | Path):
            return float(self.score_tensor(load_image(inputs).unsqueeze(0))[0])
        records = list(self.score_files(inputs, batch_size=batch_size))
        return np.array([math.nan if r.score is None else r.score for r in records])

    def score_files(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int = 8,
        workers: int = 0,
        progress: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> Iterator[ScoreRecord]:
        """One ScoreRecord per path, in order, batches of same-size images run together. Files
        over ``max_pixels`` (width x height, checked before decoding) are refused."""
        from torch.utils.data import DataLoader

        opts = self.meta.get("features", {})
        loader = DataLoader(
            DecodedImages(
                list(paths),
                max_side=opts.get("max_side"),
                min_side=opts.get("min_side"),
                max_pixels=max_pixels,
            ),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=collate_list,
        )
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(paths), unit="img", dynamic_ncols=True)
        for items in loader:
            scores: dict[int, float] = {}
            by_shape: dict[tuple[int, ...], list[tuple[int, Tensor]]] = {}
            for i, image, _ in items:
                if image is not None:
                    by_shape.setdefault(tuple(image.shape), []).append((i, image))
            for shape, group in by_shape.items():
                # images already capped by DecodedImages; large ones go through the encoders a
                # few at a time, which bounds memory and keeps activations in cache
                step = max(1, MAX_PIXELS_PER_FORWARD // (shape[1] * shape[2]))
                for start in range(0, len(group), step):
                    chunk = group[start : start + step]
                    values = self._score_prepared(torch.stack([im for _, im in chunk]))
                    scores.update({i: float(v) for (i, _), v in zip(chunk, values, strict=True)})
            for i, _, error in items:
                yield ScoreRecord(str(paths[i]), scores.get(i), error)
            if bar is not None:
                bar.update(len(items))
        if bar is not None:
            bar.close()

    # -- storage --------------------------------------------------------------------------------

    def save(self, directory: str | Path, *, half: bool = True) -> Path:
        """Write the bundle; ``half`` stores the encoder weights as float16."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta)
        meta["format"] = FORMAT
        for kind in ("quality", "content"):
            backbone = getattr(self.features, kind)
            if backbone is None:
                meta[kind] = None
                continue
            if not isinstance(meta.get(kind), dict) or "arch" not in meta[kind]:
                raise ModelError(f"the model card lacks the {kind} encoder's architecture")
            state = {
                k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
                for k, v in backbone.state_dict().items()
            }
            save_file(state, str(directory / f"{kind}.safetensors"))
            norm = getattr(self.features, f"{kind}_norm").kind
            meta[kind] = {**meta[kind], "input_norm": norm, "file": f"{kind}.safetensors"}
        self.regressor.save(directory)
        (directory / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return directory


def bundle(
    quality: torch.nn.Module | None,
    content: torch.nn.Module | None,
    regressor: QualityRegressor,
    *,
    quality_arch: str | None,
    content_arch: str | None,
    quality_norm: str = "none",
    content_norm: str = "imagenet",
    **meta: Any,
) -> ReIQA:
    """Assemble a model from backbones and a fitted regressor (see ``save``)."""
    info = {
        "quality": {"arch": quality_arch} if quality is not None else None,
        "content": {"arch": content_arch} if content is not None else None,
        **meta,
    }
    features = FeatureModel(
        quality,
        content,
        compat=meta.get("features", {}).get("compat", False),
        quality_norm=quality_norm,
        content_norm=content_norm,
    )
    return ReIQA(features, regressor, info)


def load(path: str | Path | None = None) -> ReIQA:
    """The embedded default model (no argument or 'default'), or a bundle folder."""
    if path is None or str(path) == "default":
        root = resources.files("reiqa") / "weights" / "default"
        if not root.joinpath("model.json").is_file():
            raise ModelError(
                "this build of reiqa ships no embedded default model yet; "
                "pass a bundle folder: reiqa.load('path/to/model')"
            )
        with resources.as_file(root) as folder:
            return _load_dir(Path(folder))
    return _load_dir(Path(path))


def _load_dir(directory: Path) -> ReIQA:
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory}: not a reiqa model (no model.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ModelError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    encoders, norms = {}, {"quality": "none", "content": "imagenet"}
    for kind in ("quality", "content"):
        entry = meta.get(kind)
        encoders[kind] = _load_backbone(directory / entry["file"], entry["arch"]) if entry else None
        if entry:
            norms[kind] = entry.get("input_norm", norms[kind])
    regressor = QualityRegressor.load(directory)
    model = ReIQA(
        FeatureModel(
            encoders["quality"],
            encoders["content"],
            compat=meta.get("features", {}).get("compat", False),
            quality_norm=norms["quality"],
            content_norm=norms["content"],
        ),
        regressor,
        meta,
    )
    width = sum(w for _, w in model.features.blocks())
    if regressor.coef_ is not None and len(regressor.coef_) != width:
        raise ModelError(
            f"{directory}: the regressor expects {len(regressor.coef_)} features, the encoders give {width}"
        )
    return model


def _encoder_from_file(path: Path, default_norm: str) -> tuple[torch.nn.Module, str, str]:
    """(backbone, arch, input_norm) of our encoder.json/.safetensors, or of an official ResNet-50
    .pth release (whose input normalisation is the role's default)."""
    from reiqa.models.checkpoints import import_official, load_encoder

    if path.suffix in (".pth", ".pt", ".tar"):
        return import_official(path, arch="resnet50")[0], "resnet50", default_norm
    backbone, meta = load_encoder(path)
    return backbone, meta["arch"], meta.get("input_norm", default_norm)


def make_bundle(
    quality: Path | None,
    content: Path | None,
    regressor_dir: Path,
    out: Path,
    *,
    name: str = "reiqa model",
    half: bool = True,
    max_side: int | None = None,
    min_side: int | None = None,
    compat: bool = False,
) -> Path:
    """Write a model folder from encoder files and a regressor folder (``reiqa bundle``).

    The feature options (``max_side``, ``min_side``, ``compat``) must be those the regressor's
    features were extracted with: the bundle is refused when the encoders and options do not
    reproduce the regressor's feature ``model_id``."""
    if quality is None and content is None:
        raise ModelError("a model needs a quality and/or a content encoder")
    regressor = QualityRegressor.load(regressor_dir)
    q, q_arch, q_norm = _encoder_from_file(Path(quality), "none") if quality else (None, None, "none")
    c, c_arch, c_norm = _encoder_from_file(Path(content), "imagenet") if content else (None, None, "imagenet")
    info = regressor.info
    model = bundle(
        q,
        c,
        regressor,
        quality_arch=q_arch,
        content_arch=c_arch,
        quality_norm=q_norm,
        content_norm=c_norm,
        name=name,
        score={"range": info.get("score_range"), "higher_is_better": True, "source": info.get("scores")},
        features={"max_side": max_side, "min_side": min_side, "compat": compat},
    )
    expected = info.get("model_id")
    if expected and model.features.model_id(max_side=max_side, min_side=min_side) != expected:
        raise ModelError(
            f"{regressor_dir}: the regressor was fitted on features of other encoder weights or other "
            f"feature options (max_side, min_side, compat) than these; extract the features with the "
            f"same encoders and options, then fit again"
        )
    width = sum(w for _, w in model.features.blocks())
    if regressor.coef_ is not None and len(regressor.coef_) != width:
        raise ModelError(
            f"{regressor_dir}: the regressor was fitted on {len(regressor.coef_)} features, these "
            f"encoders give {width}; fit it on features of the same encoders"
        )
    return model.save(out, half=half)
