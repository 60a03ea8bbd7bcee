"""Careless and hostile clients against a real ``reiqa serve`` process: each case gets a clear
4xx or a per-file error, never a 5xx, a hang, a traceback or a forged log line."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from tests.service.conftest import httpx, running_server

parser = pytest.importorskip("prometheus_client.parser")


@pytest.fixture(scope="module")
def strict(tiny_model: Path):
    """A server with short time-outs and a small pixel budget: 2 megapixels a request, 3 in all."""
    with running_server(
        "--model", str(tiny_model),
        "--header-timeout", "1", "--read-timeout", "1",
        "--request-megapixels", "2", "--inflight-megapixels", "3",
    ) as s:  # fmt: skip
        yield s


def _address(server) -> tuple[str, int]:
    url = urlsplit(server.url)
    return url.hostname, url.port


def _multipart(parts: list[tuple[bytes, bytes]], boundary: bytes = b"hostile") -> tuple[bytes, bytes]:
    """(body, content type) of raw ``file`` parts (filename bytes sent as they are)."""
    disposition = b'Content-Disposition: form-data; name="file"; filename="'
    body = b"".join(
        b"--" + boundary + b"\r\n" + disposition + name + b'"\r\n\r\n' + data + b"\r\n"
        for name, data in parts
    ) + b"--" + boundary + b"--\r\n"  # fmt: skip
    return body, b"multipart/form-data; boundary=" + boundary


def _raw_post(server, body: bytes, content_type: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/score", content=body, headers={"content-type": content_type.decode()}, timeout=60
    )


def _png(width: int, height: int, seed: int | None = None) -> bytes:
    if seed is None:
        image = Image.new("RGB", (width, height), (90, 120, 150))
    else:
        array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(array)
    out = io.BytesIO()
    image.save(out, "PNG" if seed is None else "JPEG", quality=90)
    return out.getvalue()


def _dds_unknown_format() -> bytes:
    """A DDS header whose FourCC Pillow does not implement (it raises NotImplementedError)."""
    header = struct.pack("<7I", 124, 0x1007, 4, 4, 0, 0, 0) + b"\0" * 44
    pixel_format = struct.pack("<2I", 32, 4) + b"ABCD" + b"\0" * 20
    return b"DDS " + header + pixel_format + struct.pack("<5I", 0x1000, 0, 0, 0, 0) + b"\0" * 64


def _metric(server, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def _new_lines(server, since: int) -> list[str]:
    time.sleep(0.5)  # the server writes its line once the connection is done
    return server.stderr[since:]


def test_a_boundary_over_256_characters_is_400_not_500(strict) -> None:
    body, ctype = _multipart([(b"a.png", _png(16, 16))], boundary=b"b" * 300)
    response = _raw_post(strict, body, ctype)
    assert response.status_code == 400
    assert "boundary" in response.json()["error"] and "300" in response.json()["error"]
    assert httpx.get(f"{strict.url}/livez", timeout=10).status_code == 200


def test_any_decoder_exception_is_that_files_error(strict, photos) -> None:
    good = photos["photo0.png"].read_bytes()
    body, ctype = _multipart([(b"texture.jpg", _dds_unknown_format()), (b"photo.png", good)])
    response = _raw_post(strict, body, ctype)
    assert response.status_code == 200
    texture, photo = response.json()["results"]
    assert texture["score"] is None and "NotImplementedError" in texture["error"]
    assert texture["error"].startswith("texture.jpg")
    assert photo["error"] is None and photo["score"] is not None


def test_a_newline_in_a_file_name_forges_no_log_line(strict, tmp_path) -> None:
    corrupt_exif = _png(32, 32, seed=1)  # a JPEG; Pillow warns about its EXIF below
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x01\x01\x03\x00\x01\x00\x00\x00\x20\x00"
    corrupt_exif = (
        corrupt_exif[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + corrupt_exif[2:]
    )
    since = len(strict.stderr)
    name = b"a\nFORGED reiqa serve: listening on http://evil:1 .jpg"
    body, ctype = _multipart([(name, corrupt_exif), (b"b\n\x1b[31mred.png", b"junk")])
    response = _raw_post(strict, body, ctype)
    assert response.status_code == 200
    assert [r["filename"] for r in response.json()["results"]] == [name.decode(), "b\n\x1b[31mred.png"]
    lines = _new_lines(strict, since)
    assert any("a\\nFORGED" in line for line in lines), lines  # the warning names the file, escaped
    assert not any(line.startswith(("FORGED", "red")) or "\x1b" in line for line in lines), lines


def test_pixels_over_the_request_limit_are_413(strict) -> None:
    flat = _png(1000, 1000)  # about 4 KB, a megapixel decoded
    body, ctype = _multipart([(f"{i}.png".encode(), flat) for i in range(3)])
    response = _raw_post(strict, body, ctype)
    assert len(body) < 40_000 and response.status_code == 413
    assert "--request-megapixels" in response.json()["error"]
    one = _raw_post(strict, *_multipart([(b"one.png", _png(800, 600))]))
    assert one.status_code == 200 and one.json()["results"][0]["score"] is not None


def test_the_pixel_budget_holds_across_concurrent_requests(strict) -> None:
    image = _png(1000, 900)  # charged 1.8 megapixels: two never fit in 3 at once

    def send(i: int) -> int:
        return _raw_post(strict, *_multipart([(f"{i}.png".encode(), image)])).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(send, range(6)))
    assert codes == [200] * 6
    peak = _metric(strict, "reiqa_pixels_in_flight_peak")
    assert 1.8e6 <= peak <= 3e6
    assert _metric(strict, "reiqa_pixels_in_flight") == 0


def test_idle_and_half_sent_connections_are_closed(strict) -> None:
    host, port = _address(strict)
    cases = {
        "silent": b"",
        "half headers": b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Le",
        "half body": b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 5000\r\n\r\n--b\r\n",
    }
    sockets = {}
    for name, data in cases.items():
        sockets[name] = socket.create_connection((host, port))
        sockets[name].sendall(data)
    start = time.monotonic()
    for name, sock in sockets.items():
        sock.settimeout(15)
        answer = b""
        while chunk := sock.recv(4096):  # returns b"" once the server closes
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408"), (name, answer)
    assert time.monotonic() - start < 10


def test_a_hang_up_mid_upload_is_one_log_line(strict) -> None:
    host, port = _address(strict)
    since = len(strict.stderr)
    sock = socket.create_connection((host, port))
    sock.sendall(
        b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 200000\r\n\r\n--b\r\n" + b"x" * 5000
    )
    time.sleep(0.2)
    sock.close()
    lines = _new_lines(strict, since)
    assert len(lines) == 1, lines
    assert '"POST /score" 499' in lines[0] and "client gone" in lines[0]
    assert httpx.get(f"{strict.url}/livez", timeout=10).status_code == 200


def test_a_gone_clients_images_are_not_scored(tiny_model: Path) -> None:
    """40 photos whose client hangs up once they are sent: they leave the queue, and a live
    request after them is answered without waiting for them."""
    photos = [_png(900, 900, seed=i) for i in range(40)]
    body, ctype = _multipart([(f"{i}.jpg".encode(), data) for i, data in enumerate(photos)])
    with running_server("--model", str(tiny_model)) as server:
        host, port = _address(server)
        before = _metric(server, "reiqa_batch_size_images_sum")
        sock = socket.create_connection((host, port))
        sock.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip
        sock.close()
        time.sleep(0.2)
        start = time.monotonic()
        live = _raw_post(server, *_multipart([(b"live.png", _png(64, 64, seed=99))]))
        waited = time.monotonic() - start
        time.sleep(1.0)
        scored = _metric(server, "reiqa_batch_size_images_sum") - before
        gone = _metric(server, "reiqa_client_disconnects_total")
        lines = list(server.stderr)
    assert live.status_code == 200 and live.json()["results"][0]["score"] is not None
    assert scored == 1, f"{scored} images went through the encoders; only the live one should have"
    assert gone == 1
    assert sum("client gone" in line for line in lines) == 1
    assert not any("Traceback" in line for line in lines)
    assert waited < 10


def test_the_server_survives_every_case(strict) -> None:
    """Run last in this module: after all of the above, the server still answers."""
    threading.Event().wait(0.1)
    assert httpx.get(f"{strict.url}/readyz", timeout=10).status_code == 200
    assert strict.process.poll() is None
    assert not any("Traceback" in line for line in strict.stderr)
