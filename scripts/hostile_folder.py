"""Make a folder of the awkward and hostile files of issue 12, to run ``reiqa score`` on by hand:

    .venv/bin/python scripts/hostile_folder.py /tmp/hostile
    .venv/bin/reiqa score /tmp/hostile /tmp/missing.jpg -o /tmp/hostile.csv   # twice: resumed

Good photos (JPEG, AVIF, HEIC, a name that is not UTF-8, one without a suffix, a corrupt EXIF
block) are scored; the rest (truncated, empty, text named .jpg, SVG, FIFO, broken link, link loop,
a PNG declaring 100000 x 100000 pixels, a folder named .jpg) are reported, with no traceback.
POSIX only (FIFOs, symbolic links, byte file names).
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.fromarray((np.random.default_rng(0).random((96, 128, 3)) * 255).astype("uint8"))
    photo.save(folder / "good.jpg")
    photo.save(folder / "good.avif", format="AVIF")
    import pillow_heif

    pillow_heif.register_heif_opener()
    photo.save(folder / "phone.heic", format="HEIF")
    jpeg = io.BytesIO()
    photo.save(jpeg, "JPEG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[:300])
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("hello")
    (folder / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    os.mkfifo(folder / "pipe.jpg")
    os.symlink(folder / "nowhere.jpg", folder / "dangling.jpg")
    os.symlink(folder / "loop2.jpg", folder / "loop1.jpg")
    os.symlink(folder / "loop1.jpg", folder / "loop2.jpg")
    (folder / os.fsdecode(b"caf\xe9.jpg")).write_bytes(jpeg.getvalue())
    (folder / "noextension").write_bytes(jpeg.getvalue())
    header = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    (folder / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b""))
    exif = Image.Exif()
    exif[0x010F] = "camera"
    with_exif = io.BytesIO()
    photo.save(with_exif, "JPEG", exif=exif.tobytes())
    data = bytearray(with_exif.getvalue())
    at = data.find(b"Exif")
    data[at + 10 : at + 18] = b"\xff" * 8
    (folder / "bad-exif.jpg").write_bytes(bytes(data))
    (folder / "folder.jpg").mkdir()


if __name__ == "__main__":
    make(Path(sys.argv[1]))
    print(f"wrote {sys.argv[1]}")
