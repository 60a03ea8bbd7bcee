"""How much decoded image memory the service holds at once.

An upload's bytes say little about its memory: a 4.5 KB flat PNG decodes to 1024x1024 pixels,
and decoding costs about 19 bytes a pixel at its peak (Pillow's 8-bit image and the float32
tensor made from it; measured: an 8000x6000 JPEG raised the peak resident memory by 886 MB). So
each request is charged, before anything is decoded, the pixels its headers declare
(``reiqa.io.image_size``): its largest image at full size (the service decodes a request's files one at a
time) plus every image at the size it is held until it is scored (capped by the model's
``max_side``). A request over ``request_limit`` gets 413; the requests being answered together
hold at most ``capacity`` pixels, and one that does not fit waits for others to finish (a
smaller one that fits may go first), or gets 503 when its wait times out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


def held_pixels(width: int, height: int, max_side: int | None) -> int:
    """Pixels of an image once prepared: downscaled so its longer side is at most ``max_side``."""
    longer = max(width, height)
    if max_side is None or longer <= max_side:
        return width * height
    scale = max_side / longer
    return max(1, round(width * scale)) * max(1, round(height * scale))


def request_cost(
    sizes: Iterable[tuple[int, int] | None], *, max_side: int | None, max_pixels: int | None
) -> int:
    """The pixels a request is charged: its largest image decoded plus all of them held.
    Images over ``max_pixels`` (refused before decoding) and unreadable headers (None) cost
    nothing."""
    largest, held = 0, 0
    for size in sizes:
        if size is None:
            continue
        full = size[0] * size[1]
        if max_pixels is not None and full > max_pixels:
            continue
        largest = max(largest, full)
        held += held_pixels(*size, max_side)
    return largest + held


class BudgetTimeout(Exception):
    """A request waited longer than it may for pixels to free up."""


class PixelBudget:
    """At most ``capacity`` pixels reserved at once, shared by every request of the service."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._freed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._freed is None:  # made on the running loop, at first use
            self._freed = asyncio.Condition()
        return self._freed

    @contextlib.asynccontextmanager
    async def reserve(self, pixels: int, *, timeout_s: float | None):
        """Hold ``pixels`` (at most ``capacity``) for the body of the ``async with``; waits until
        they fit, BudgetTimeout after ``timeout_s``."""
        pixels = min(pixels, self.capacity)
        freed = self._condition()
        async with freed:
            try:
                await asyncio.wait_for(
                    freed.wait_for(lambda: self.in_use + pixels <= self.capacity), timeout_s
                )
            except TimeoutError:
                raise BudgetTimeout from None
            self.in_use += pixels
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            async with freed:
                self.in_use -= pixels
                freed.notify_all()
