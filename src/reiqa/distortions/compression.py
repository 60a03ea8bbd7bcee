"""JPEG compression (7) through torchvision's libjpeg (CPU) or nvJPEG (CUDA) codecs."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torchvision.io import decode_jpeg, encode_jpeg

from reiqa.distortions import _kernels as K


def jpeg_roundtrip(images: Tensor, quality: int) -> Tensor:
    """Encode each image as JPEG at ``quality`` (1..100, 4:2:0 chroma) and decode it.

    images: (N, 3, H, W) float in [0, 1] on CPU or CUDA. Returns the same shape, device, dtype;
    values on the 8-bit grid. The encoder needs uint8, so the input is rounded first."""
    u8 = (images.clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8)
    with warnings.catch_warnings():
        # torchvision 0.29 marks its codecs deprecated in favour of torchcodec; they still are
        # the batched libjpeg/nvJPEG path, and the older torchvision releases we support lack it.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        encoded = encode_jpeg(list(u8.unbind(0)), quality=int(quality))
        if images.device.type == "cpu":
            decoded = decode_jpeg(encoded)
        else:  # nvJPEG decodes from host buffers
            decoded = decode_jpeg([e.cpu() for e in encoded], device=images.device)
    return torch.stack(decoded).to(images.dtype) / 255.0


def jpeg(images: Tensor, values: Tensor, params: dict[str, Tensor], *, compat: bool) -> Tensor:
    """JPEG at the level's quality; the same in both modes (Pillow and torchvision use the same
    IJG quantisation tables and 4:2:0 subsampling)."""
    out = torch.empty_like(images)
    for quality, idx in K.group_by_value(values):
        idx = idx.to(images.device)
        out[idx] = jpeg_roundtrip(images[idx], int(quality))
    return out
