"""Re-IQA features: each encoder on the full image and on a half-scale copy, pooled, concatenated.

Layout of a feature vector (docs/method.md §4), in this order, each block the backbone's pooled
dimension (2048 for ResNet-50, 512 for ResNet-18):

    [quality(full), quality(half), content(full), content(half)]

A missing encoder leaves its two blocks out. The quality encoder sees raw [0, 1] RGB, the
content encoder ImageNet-normalised RGB. The half scale is (H // 2, W // 2) with antialiased
bicubic, which is the computation of Pillow's BICUBIC resize the official demos use;
``compat=True`` also rounds it to 8 bits, as the demos' PIL image is.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from reiqa.atomic import atomic_path
from reiqa.digest import file_sha256
from reiqa.engines import ENGINES, Engine
from reiqa.errors import ConfigError, FeatureError, ImageLoadError
from reiqa.io import (
    DEFAULT_MAX_PIXELS,
    Failure,
    array_to_tensor,
    check_images,
    decode_image,
    load_image,
    to_tensor,
)
from reiqa.models.backbones import POOLINGS, InputNorm, set_pooling
from reiqa.models.checkpoints import load_encoder
from reiqa.resize import cap_size, half_scale
from reiqa.schema import from_dict

T = TypeVar("T")

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class FeatureOptions:
    """How images are prepared before the encoders; a regressor is only valid for the options its
    features were extracted with (they are part of the feature ``model_id``).

    Attributes:
        max_side: downscale images whose longer side is larger (antialiased); None: full size.
        min_side: downscale so that the shorter side is at most this; None: no limit.
        compat: the official demos' half scale (rounded to 8 bits).
        pooling: how each encoder's maps become its vector (``models.backbones.POOLINGS``):
            'gap', Re-IQA's global average, or 'gap+stages', with the averages of the ends of
            the last stages too.
    """

    max_side: int | None = None
    min_side: int | None = None
    compat: bool = False
    pooling: str = "gap"

    def __post_init__(self) -> None:
        for name in ("max_side", "min_side"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(
                    f"features.{name} must be a positive number of pixels or null, got {value!r}"
                )
        if not isinstance(self.compat, bool):
            raise ConfigError(f"features.compat must be true or false, got {self.compat!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"features.pooling must be one of {sorted(POOLINGS)}, got {self.pooling!r}")

    def to_dict(self) -> dict[str, Any]:
        out = {"max_side": self.max_side, "min_side": self.min_side, "compat": self.compat}
        if self.pooling != "gap":  # cards of Re-IQA's pooling stay as they were
            out["pooling"] = self.pooling
        return out

    @classmethod
    def from_dict(cls, raw: object) -> FeatureOptions:
        return from_dict(cls, raw, "features")


class FeatureModel(nn.Module):
    """The encoders of a Re-IQA model, used for inference only.

    Args:
        quality: quality-aware backbone ((N, 3, H, W) -> (N, D)), or None.
        content: content backbone, or None.
        compat: the official demos' half scale (rounded to 8 bits).
        quality_norm, content_norm: the input normalisation each backbone was trained with
            (``InputNorm`` kinds): raw [0, 1] RGB for Re-IQA's quality encoder, ImageNet
            statistics for its content encoder, 'tf-lite' for EfficientNet-Lite.
        pooling: how each backbone's maps become its vector (``FeatureOptions.pooling``); the
            backbones are set to it (``models.backbones.set_pooling``).
        engine: what runs the backbones (``reiqa.engines``): its pixel budget per forward pass
            and its arithmetic come with it. Backbones run by a graph engine are built by
            ``reiqa.inference.onnx.on_engine``.
        weights_hash: for backbones run by another engine, the hash of the torch weights they
            were exported from (``weights_hash()`` of the torch model), so that both have one id.
    """

    def __init__(
        self,
        quality: nn.Module | None,
        content: nn.Module | None,
        *,
        compat: bool = False,
        quality_norm: str = "none",
        content_norm: str = "imagenet",
        pooling: str = "gap",
        engine: Engine = ENGINES["torch"],
        weights_hash: hashlib._Hash | None = None,
    ) -> None:
        super().__init__()
        if quality is None and content is None:
            raise ValueError("a FeatureModel needs at least one encoder")
        for encoder in (quality, content):
            if encoder is not None:
                set_pooling(encoder, pooling)
        self.pooling = pooling
        self.quality = quality
        self.content = content
        self.quality_norm = InputNorm(quality_norm)
        self.content_norm = InputNorm(content_norm)
        self.compat = compat
        self.engine = engine
        self._weights_hash = weights_hash.copy() if weights_hash is not None else None
        self.eval()

    @classmethod
    def from_files(
        cls,
        quality: str | Path | None,
        content: str | Path | None,
        *,
        compat: bool = False,
        pooling: str = "gap",
    ) -> FeatureModel:
        """From encoder files written by ``reiqa pretrain`` (encoder.json + encoder.safetensors)."""
        q, q_about = load_encoder(Path(quality)) if quality else (None, None)
        c, c_about = load_encoder(Path(content)) if content else (None, None)
        return cls(
            q,
            c,
            compat=compat,
            quality_norm=(q_about and q_about.input_norm) or "none",
            content_norm=(c_about and c_about.input_norm) or "imagenet",
            pooling=pooling,
        )

    def with_pooling(self, pooling: str) -> FeatureModel:
        """These encoders with another pooling (a new model sharing the weights; this one keeps
        its own)."""
        if pooling == self.pooling:
            return self
        if self.engine.start is not None:
            raise FeatureError(f"the pooling of encoders run by {self.engine.name} is part of their graphs")
        return FeatureModel(
            copy.copy(self.quality) if self.quality is not None else None,
            copy.copy(self.content) if self.content is not None else None,
            compat=self.compat,
            quality_norm=self.quality_norm.kind,
            content_norm=self.content_norm.kind,
            pooling=pooling,
            weights_hash=self._weights_hash,
        )

    @property
    def device(self) -> torch.device:
        """Where the encoders are (the normalisation buffers move with them)."""
        return self.quality_norm.mean.device

    def encoders(self) -> dict[str, tuple[InputNorm, nn.Module]]:
        """{role: (its input normalisation, its backbone)} of the encoders present, in feature
        order ('quality', then 'content')."""
        pairs = {"quality": (self.quality_norm, self.quality), "content": (self.content_norm, self.content)}
        return {role: (norm, enc) for role, (norm, enc) in pairs.items() if enc is not None}

    def blocks(self) -> list[tuple[str, int]]:
        """[(block name, width)] in feature order."""
        out = []
        for name, (_, enc) in self.encoders().items():
            dim = output_dim(enc)
            out += [(f"{name}_full", dim), (f"{name}_half", dim)]
        return out

    @torch.inference_mode()
    def forward(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) float in [0, 1] (one size) -> (N, D) float32 features."""
        half = half_scale(images, quantize=self.compat)
        parts = []
        if self.quality is not None:
            parts += [self.quality(self.quality_norm(images)), self.quality(self.quality_norm(half))]
        if self.content is not None:
            parts += [self.content(self.content_norm(images)), self.content(self.content_norm(half))]
        return torch.cat([p.float().flatten(1) for p in parts], dim=1)

    def model_id(self, *, max_side: int | None, min_side: int | None) -> str:
        """A short hash of the weights and the extraction options, to key feature caches."""
        h = self.weights_hash()
        options = {"compat": self.compat, "max_side": max_side, "min_side": min_side}
        if (self.quality_norm.kind, self.content_norm.kind) != ("none", "imagenet"):
            options["norms"] = [self.quality_norm.kind, self.content_norm.kind]
        if self.pooling != "gap":
            options["pooling"] = self.pooling
        if self.engine.precision != "fp32":  # other numbers: never mixed with fp32 in caches and outputs
            options["precision"] = self.engine.precision
        h.update(json.dumps(options).encode())
        return h.hexdigest()[:16]

    def weights_hash(self) -> hashlib._Hash:
        """A SHA-256 object fed with the encoders' weights (a fresh copy each call). Encoders run
        by another engine keep the hash of the torch weights they came from."""
        if self._weights_hash is not None:
            return self._weights_hash.copy()
        h = hashlib.sha256()
        for enc in (self.quality, self.content):
            if enc is None:
                h.update(b"none")
                continue
            for k, v in enc.state_dict().items():
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h


def output_dim(backbone: nn.Module) -> int:
    """Pooled width: ``feature_dim`` as set by ``build_backbone``, else a torchvision ResNet's
    ``inplanes`` (its last width)."""
    width = getattr(backbone, "feature_dim", None)
    if not isinstance(width, int):
        width = getattr(backbone, "inplanes", None)
    if not isinstance(width, int):
        raise FeatureError(f"cannot tell the feature width of {type(backbone).__name__}")
    return width


# -- preparing images: any source -> (3, H, W) in [0, 1], capped by the feature options ---------

#: what :func:`prepare` accepts as one image
ImageSource = str | os.PathLike | bytes | Tensor | np.ndarray | Image.Image


def prepare(
    source: ImageSource,
    options: FeatureOptions,
    *,
    name: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Tensor:
    """One image as the encoders take it: decoded (a path, or ``bytes`` named ``name``, through
    ``reiqa.io``), converted (a PIL image; a (3, H, W) or (H, W, 3) array or tensor, float in
    [0, 1] or uint8, checked by ``reiqa.io.check_images``) and brought within the size cap of
    ``options``: (3, H, W) float32 in [0, 1] on the CPU. The one place where an image is capped.

    Raises:
        ImageLoadError: a file or upload that cannot be read (the message names it).
        ValueError, TypeError: an array or tensor that is not one image in [0, 1].
    """
    if isinstance(source, str | os.PathLike):
        image = load_image(source, max_pixels=max_pixels)
    elif isinstance(source, bytes):
        image = decode_image(source, name or "upload", max_pixels=max_pixels)
    elif isinstance(source, Image.Image):
        image = check_images(to_tensor(source), name or "the PIL image")[0]
    elif isinstance(source, np.ndarray):
        tensor, single = array_to_tensor(source)
        if not single:
            raise ValueError(f"{name or 'the array'}: one image expected, got shape {tuple(source.shape)}")
        image = check_images(tensor, name or "the array")[0]
    elif isinstance(source, Tensor):
        if source.ndim != 3:
            raise ValueError(
                f"{name or 'the tensor'}: one (3, H, W) image expected, got {tuple(source.shape)}"
            )
        image = check_images(source, name or "the tensor")[0]
    else:
        raise TypeError(f"cannot prepare a {type(source).__name__} as an image")
    return cap_size(image, max_side=options.max_side, min_side=options.min_side)


def prepare_or_failure(
    source: ImageSource,
    options: FeatureOptions,
    *,
    name: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Tensor | Failure:
    """:func:`prepare`, with a file or upload that cannot be read returned as a ``Failure``
    (batch jobs go on; a bad array or tensor is still an exception: it is a caller's bug)."""
    try:
        return prepare(source, options, name=name, max_pixels=max_pixels)
    except ImageLoadError as exc:
        return Failure.of(name if name is not None else source, exc)


class PreparedFiles(Dataset):
    """Item i: (i, the prepared image of file i or its Failure), for a DataLoader whose batches
    keep their failures (``collate_fn=list``)."""

    def __init__(self, paths: Sequence[Path], options: FeatureOptions, max_pixels: int | None) -> None:
        self.paths, self.options, self.max_pixels = list(paths), options, max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Tensor | Failure]:
        path = self.paths[i]
        return i, prepare_or_failure(path, self.options, name=str(path), max_pixels=self.max_pixels)


def iter_prepared(
    paths: Sequence[str | Path],
    options: FeatureOptions,
    *,
    batch_size: int = 8,
    workers: int = 0,
    progress: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ahead: int | None = None,
) -> Iterator[list[tuple[int, Tensor | Failure]]]:
    """The files prepared in batches of ``batch_size`` (decoded in ``workers`` processes), in
    input order: (index into ``paths``, image or Failure). Under both scoring and extraction.

    Without worker processes, a thread decodes up to ``ahead`` batches ahead of the caller (0 or
    None: decoded in line; the engine's ``decode_ahead`` for scoring), so that decoding overlaps
    the encoders; ``$REIQA_DECODE_AHEAD`` overrides it."""
    loader = DataLoader(
        PreparedFiles([Path(p) for p in paths], options, max_pixels),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=list,
    )
    ahead = DECODE_AHEAD if DECODE_AHEAD is not None else (ahead or 0)
    batches: Iterator[list[tuple[int, Tensor | Failure]]] = iter(loader)
    if workers == 0 and ahead > 0:
        batches = in_thread_ahead(batches, ahead)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="img", dynamic_ncols=True)
    try:
        for batch in batches:
            if bar is not None:
                bar.update(len(batch))
            yield batch
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        if bar is not None:
            bar.close()


#: $REIQA_DECODE_AHEAD: batches a thread decodes ahead of the encoders, whatever the engine
#: (0: in line); None: each engine's own (``reiqa.engines.Engine.decode_ahead``)
DECODE_AHEAD = int(os.environ["REIQA_DECODE_AHEAD"]) if os.environ.get("REIQA_DECODE_AHEAD") else None


def in_thread_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items``, produced by a daemon thread at most ``depth`` ahead of the consumer. An
    exception in the producer is raised in the consumer; closing the generator stops the thread
    at its next item."""
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put(("item", item), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            queue.put(("error", exc))

    thread = threading.Thread(target=produce, name="reiqa-decode", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get(timeout=0.05)
        thread.join()


@dataclass
class FeatureTable:
    """Features of a list of files: row i of ``features`` belongs to ``paths[i]``."""

    paths: list[Path]
    features: np.ndarray  # (n, D) float32
    blocks: list[tuple[str, int]]
    model_id: str
    failures: list[tuple[Path, str]] = field(default_factory=list)

    def columns(self, names: Sequence[str]) -> np.ndarray:
        """The columns of the named blocks (e.g. ['quality_full', 'quality_half'])."""
        starts, pos = {}, 0
        for name, width in self.blocks:
            starts[name] = (pos, pos + width)
            pos += width
        unknown = [n for n in names if n not in starts]
        if unknown:
            raise FeatureError(
                f"no block(s) {unknown} in these features; blocks: {[b for b, _ in self.blocks]}"
            )
        return np.concatenate([self.features[:, slice(*starts[n])] for n in names], axis=1)

    def select(self, names: Sequence[str]) -> FeatureTable:
        """The same rows with only the named blocks."""
        widths = dict(self.blocks)
        return FeatureTable(
            self.paths, self.columns(names), [(n, widths[n]) for n in names], self.model_id, self.failures
        )

    def save(self, path: str | Path) -> Path:
        """One safetensors file: the matrix, with the paths and layout as metadata."""
        from safetensors.numpy import save_file

        path = Path(path)
        meta = {
            "paths": json.dumps([str(p) for p in self.paths]),
            "blocks": json.dumps(self.blocks),
            "model_id": self.model_id,
            "format": "reiqa-features-1",
        }
        with atomic_path(path) as tmp:
            save_file(
                {"features": np.ascontiguousarray(self.features, dtype=np.float32)}, str(tmp), metadata=meta
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureTable:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such feature file")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                features = f.get_tensor("features")
        except Exception as exc:  # safetensors raises its own error types for non-safetensors files
            raise FeatureError(f"{path}: not a reiqa feature file ({exc})") from exc
        if meta.get("format") != "reiqa-features-1":
            raise FeatureError(f"{path}: not a reiqa feature file (written by `reiqa features`)")
        blocks = [tuple(b) for b in json.loads(meta["blocks"])]
        return cls([Path(p) for p in json.loads(meta["paths"])], features, blocks, meta["model_id"])


class FeatureCache:
    """Features on disk keyed by (file content hash, model id): appendable, resumable.

    A directory of chunk files, each written atomically after a batch; a crash loses at most the
    batch in flight, and a re-run skips every image already done. Chunks of other models are
    kept and ignored."""

    def __init__(self, directory: str | Path, model_id: str) -> None:
        self.dir = Path(directory)
        self.model_id = model_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self._rows: dict[str, np.ndarray] = {}
        self._count = 0
        from safetensors import safe_open

        for chunk in sorted(self.dir.glob(f"{model_id}-*.safetensors")):
            with safe_open(str(chunk), framework="numpy") as f:
                hashes = json.loads((f.metadata() or {})["hashes"])
                matrix = f.get_tensor("features")
            self._rows.update(zip(hashes, matrix, strict=True))
            self._count += 1

    def __contains__(self, digest: str) -> bool:
        return digest in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, digest: str) -> np.ndarray:
        return self._rows[digest]

    def add(self, digests: list[str], features: np.ndarray) -> None:
        from safetensors.numpy import save_file

        if not digests:
            return
        self._count += 1
        path = self.dir / f"{self.model_id}-{self._count:06d}-{digests[0][:8]}.safetensors"
        with atomic_path(path) as tmp:
            save_file(
                {"features": np.ascontiguousarray(features, dtype=np.float32)},
                str(tmp),
                metadata={"hashes": json.dumps(digests)},
            )
        self._rows.update(zip(digests, features, strict=True))


# -- the feature iterator: files -> decoded, batched by size -> encoders -> rows ----------------


@dataclass
class FeatureRow:
    """The features of one input file, or why there are none."""

    index: int  # position in the list of paths given
    path: Path
    features: np.ndarray | None  # (D,) float32
    error: str | None = None


@torch.inference_mode()
def encode(
    model: FeatureModel,
    images: Tensor,
    *,
    channels_last: bool = True,
    amp: str = "none",
    max_pixels_per_forward: int | None = None,
) -> np.ndarray:
    """Features of (N, 3, H, W) float images in [0, 1] of one size, already capped by the feature
    options; (N, D) float32. The images go to the model's device a few at a time, at most
    ``max_pixels_per_forward`` pixels per forward pass (None: the budget of the model's engine)."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be 'none', 'bf16' or 'fp16', got {amp!r}")
    amp_dtype = AMP_DTYPES[amp]
    if amp_dtype is None and model.engine.start is None:  # torch's engines: torch-fp16 autocasts
        amp_dtype = AMP_DTYPES.get(model.engine.precision)
    device = model.device
    budget = model.engine.pixels_per_forward if max_pixels_per_forward is None else max_pixels_per_forward
    step = max(1, budget // (images.shape[-2] * images.shape[-1]))
    parts = []
    # float32 means float32 on CUDA too: TensorFloat-32 convolutions (cuDNN's default on Ampere
    # and later) move scores by up to 0.05 (H200, docs/reports/gpu.json)
    with _no_tf32() if device.type == "cuda" else contextlib.nullcontext():
        for start in range(0, len(images), step):
            x = images[start : start + step].to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                parts.append(model(x).float().cpu().numpy())
    width = sum(w for _, w in model.blocks())
    return np.concatenate(parts) if parts else np.zeros((0, width), np.float32)


def _no_tf32() -> contextlib.AbstractContextManager[None]:
    """cuDNN without TensorFloat-32, its other settings as they are."""
    cudnn = torch.backends.cudnn
    return cudnn.flags(
        enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=False
    )


def encode_mixed(
    model: FeatureModel, items: list[tuple[int, Tensor]], *, channels_last: bool, amp: str
) -> dict[int, np.ndarray]:
    """Features of (index, image) pairs of mixed sizes: images of one size go together."""
    by_shape: dict[tuple[int, ...], list[tuple[int, Tensor]]] = {}
    for i, image in items:
        by_shape.setdefault(tuple(image.shape), []).append((i, image))
    rows: dict[int, np.ndarray] = {}
    for group in by_shape.values():
        feats = encode(model, torch.stack([im for _, im in group]), channels_last=channels_last, amp=amp)
        rows.update({i: f for (i, _), f in zip(group, feats, strict=True)})
    return rows


def iter_features(
    model: FeatureModel,
    paths: Sequence[str | Path],
    *,
    options: FeatureOptions = FeatureOptions(),
    batch_size: int = 8,
    workers: int = 0,
    cache: FeatureCache | None = None,
    progress: bool = False,
    channels_last: bool = True,
    amp: str = "none",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Iterator[list[FeatureRow]]:
    """The features of image files, under ``reiqa features`` (``extract``): the files prepared
    (:func:`iter_prepared`), images of one size through the encoders within the engine's pixel
    budget (``amp``: autocast), and the rows of each batch of ``batch_size`` files yielded, every
    file once, in input order.

    A file that cannot be read gets a row with ``features=None`` and the error. With ``cache``,
    files already in it are not decoded, and new rows are added to it after every batch. The
    compat flag of ``options`` must be the model's own (``FeatureModel.compat``)."""
    if options.compat != model.compat:
        raise FeatureError(
            f"options.compat={options.compat} but the model was built with compat={model.compat}"
        )
    paths = [Path(p) for p in paths]
    digests = [file_sha256(p) if cache is not None and p.is_file() else "" for p in paths]
    cached = [i for i, d in enumerate(digests) if d and cache is not None and d in cache]
    todo = sorted(set(range(len(paths))) - set(cached))
    waiting = [FeatureRow(i, paths[i], cache.get(digests[i])) for i in cached] if cache is not None else []
    prepared = iter_prepared(
        [paths[i] for i in todo],
        options,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        max_pixels=max_pixels,
        ahead=model.engine.decode_ahead,
    )
    for items in prepared:
        good = [(todo[j], image) for j, image in items if not isinstance(image, Failure)]
        rows = encode_mixed(model, good, channels_last=channels_last, amp=amp)
        if cache is not None and rows:
            cache.add([digests[i] for i in rows], np.stack(list(rows.values())))
        batch = [
            FeatureRow(
                todo[j], paths[todo[j]], rows.get(todo[j]), item.error if isinstance(item, Failure) else None
            )
            for j, item in items
        ]
        last = batch[-1].index
        batch += [r for r in waiting if r.index < last]
        waiting = [r for r in waiting if r.index > last]
        yield sorted(batch, key=lambda r: r.index)
    if waiting:
        yield waiting


def extract(
    model: FeatureModel,
    paths: Sequence[str | Path],
    *,
    batch_size: int = 8,
    workers: int = 0,
    device: str | torch.device = "cpu",
    max_side: int | None = None,
    min_side: int | None = None,
    cache: str | Path | None = None,
    progress: bool = False,
    channels_last: bool = True,
    amp: str = "none",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> FeatureTable:
    """Features for image files (see :func:`iter_features`): unreadable files are skipped and
    listed in ``failures``; with ``cache`` (a folder), images already done are not recomputed.
    ``amp`` ('bf16' or 'fp16') runs the encoders under autocast; features are float32 either way
    and AMP runs get their own cache key."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be 'none', 'bf16' or 'fp16', got {amp!r}")
    model = model.to(torch.device(device))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    mid = model.model_id(max_side=max_side, min_side=min_side) + ("" if amp == "none" else f"-{amp}")
    rows: list[FeatureRow] = []
    for batch in iter_features(
        model,
        paths,
        options=FeatureOptions(max_side=max_side, min_side=min_side, compat=model.compat),
        batch_size=batch_size,
        workers=workers,
        cache=FeatureCache(cache, mid) if cache is not None else None,
        progress=progress,
        channels_last=channels_last,
        amp=amp,
        max_pixels=max_pixels,
    ):
        rows += batch
    good = [r for r in rows if r.features is not None]
    width = sum(w for _, w in model.blocks())
    matrix = np.stack([r.features for r in good]) if good else np.zeros((0, width), np.float32)
    failures = [(r.path, r.error or "") for r in rows if r.features is None]
    return FeatureTable([r.path for r in good], matrix, model.blocks(), mid, failures)
