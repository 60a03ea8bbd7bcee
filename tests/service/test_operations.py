"""What an operator meets: probes, metrics, the API description, access logs, limits and a
graceful stop, on a real ``reiqa serve`` process."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.service.conftest import httpx, running_server

parser = pytest.importorskip("prometheus_client.parser")

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(tiny_model: Path):
    with running_server(
        "--model", str(tiny_model), "--token-env", "REIQA_TEST_TOKEN", env={"REIQA_TEST_TOKEN": TOKEN}
    ) as s:
        yield s


def _metrics(server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{server.url}/metrics", headers=server.headers(), timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in parser.text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def test_probes_answer_without_the_token_and_the_rest_needs_it(guarded, tiny_model: Path) -> None:
    import reiqa

    for path in ("/livez", "/readyz"):
        response = httpx.get(f"{guarded.url}{path}", timeout=10)
        assert response.status_code == 200 and response.json() == {"status": "ok"}, path
    for path in ("/health", "/metrics", "/model"):
        response = httpx.get(f"{guarded.url}{path}", timeout=10)
        assert response.status_code == 401, path
        assert "token" in response.json()["error"]
    card = httpx.get(f"{guarded.url}/model", headers=guarded.headers(), timeout=10)
    model = reiqa.load(tiny_model)
    assert card.json()["version"] == reiqa.__version__
    assert card.json()["model_id"] == model.model_id
    for response in (card, httpx.get(f"{guarded.url}/nowhere", timeout=10)):  # errors carry them too
        assert response.headers["x-reiqa-version"] == reiqa.__version__
        assert response.headers["x-reiqa-model"] == model.model_id


def test_metrics_count_requests_images_and_batches(guarded, photos) -> None:
    before = _metrics(guarded)
    files = [("file", (n, photos[n].read_bytes())) for n in ("photo0.png", "photo1.jpg", "notes.jpg")]
    response = httpx.post(f"{guarded.url}/score", files=files, headers=guarded.headers(), timeout=60)
    assert response.status_code == 200
    httpx.get(f"{guarded.url}/nowhere/{time.time()}", headers=guarded.headers(), timeout=10)  # "other"
    after = _metrics(guarded)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("reiqa_requests_total", method="POST", path="/score", status="200") == 1
    assert grew("reiqa_requests_total", method="GET", path="other", status="404") == 1
    assert grew("reiqa_images_total", outcome="scored") == 2
    assert grew("reiqa_images_total", outcome="failed") == 1
    assert grew("reiqa_request_duration_seconds_count", path="/score") == 1
    assert grew("reiqa_batch_size_images_count") >= 1 and grew("reiqa_batch_size_images_sum") == 2
    assert _value(after, "reiqa_queue_depth_images") == 0
    assert _value(after, "reiqa_requests_in_progress") == 0
    assert _value(after, "reiqa_pixel_budget") == 64e6
    assert 0 < _value(after, "reiqa_pixels_in_flight_peak") <= 64e6
    assert not any("nowhere" in str(labels) for _, labels in after)


def test_openapi_describes_every_route_and_the_answers_fit_it(guarded, photos) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    spec = httpx.get(f"{guarded.url}/openapi.json", timeout=10).json()
    assert spec["info"]["version"] and spec["openapi"].startswith("3.")
    expected = {
        ("/livez", "get"), ("/readyz", "get"), ("/health", "get"), ("/model", "get"),
        ("/metrics", "get"), ("/score", "post"), ("/diagnose", "post"),
    }  # fmt: skip
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert described == expected
    for path, method in described:  # each described route exists: not 404/405
        response = httpx.request(method, f"{guarded.url}{path}", headers=guarded.headers(), timeout=30)
        assert response.status_code not in (404, 405), (path, method)
    for path in ("/score", "/diagnose"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert body["properties"]["file"]["items"]["format"] == "binary"
        assert spec["paths"][path]["post"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/livez"]["get"]

    def check(answer: object, path: str, method: str, status: str = "200") -> None:
        ref = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
        jsonschema.validate(answer, {**ref, "components": spec["components"]})

    files = [("file", (n, photos[n].read_bytes())) for n in ("photo0.png", "notes.jpg")]
    scored = httpx.post(f"{guarded.url}/score", files=files, headers=guarded.headers(), timeout=60)
    check(scored.json(), "/score", "post")
    check(httpx.get(f"{guarded.url}/model", headers=guarded.headers(), timeout=10).json(), "/model", "get")
    bad = httpx.post(f"{guarded.url}/score", content=b"x", headers=guarded.headers(), timeout=10)
    assert bad.status_code == 400
    check(bad.json(), "/score", "post", "400")
    with pytest.raises(jsonschema.ValidationError):  # the check can fail
        check({"results": [{"filename": 3}]}, "/score", "post")

    page = httpx.get(f"{guarded.url}/docs", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert all(path in page.text for path, _ in expected)
    assert 'src="http' not in page.text and 'href="http' not in page.text  # nothing from elsewhere


def test_access_lines_plain_and_json(tiny_model: Path, photos) -> None:
    files = [("file", (n, photos[n].read_bytes())) for n in ("photo0.png", "notes.jpg")]
    with running_server("--model", str(tiny_model)) as plain:
        httpx.post(f"{plain.url}/score", files=files, timeout=60)
        httpx.get(f'{plain.url}/a%0A127.0.0.1 "GET /forged" 200', timeout=10)
        time.sleep(0.3)
        lines = list(plain.stderr)
    scored = [line for line in lines if '"POST /score" 200' in line]
    assert len(scored) == 1 and "images=2 failed=1" in scored[0] and scored[0].rstrip().endswith("ms")
    assert not any(line.startswith('127.0.0.1 "GET /forged"') for line in lines)
    assert any("/a\\n127.0.0.1" in line and " 404 " in line for line in lines)

    with running_server("--model", str(tiny_model), "--log-format", "json") as structured:
        httpx.post(f"{structured.url}/score", files=files, timeout=60)
        time.sleep(0.3)
        lines = list(structured.stderr)
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [e for e in entries if e.get("path") == "/score"]
    assert len(access) == 1
    assert access[0]["method"] == "POST" and access[0]["status"] == 200
    assert access[0]["images"] == 2 and access[0]["failed"] == 1 and access[0]["ms"] > 0
    assert any("listening on" in e["message"] for e in entries)


def _slow_body(data: list[tuple[str, bytes]], pause_s: float, started: threading.Event):
    """A multipart body sent in two halves, ``pause_s`` apart."""
    boundary = "slowboundary"
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{n}"\r\n\r\n'.encode()
            + d
            + b"\r\n"
            for n, d in data
        )
        + f"--{boundary}--\r\n".encode()
    )

    def chunks():
        yield body[: len(body) // 2]
        started.set()
        time.sleep(pause_s)
        yield body[len(body) // 2 :]

    return chunks(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def test_sigterm_finishes_requests_in_flight_and_exits_0(tiny_model: Path, photos) -> None:
    with running_server("--model", str(tiny_model), "--shutdown-timeout", "20") as server:
        started, result = threading.Event(), {}
        content, headers = _slow_body([("photo0.png", photos["photo0.png"].read_bytes())], 2.0, started)

        def send() -> None:
            result["response"] = httpx.post(
                f"{server.url}/score", content=content, headers=headers, timeout=60
            )

        sender = threading.Thread(target=send)
        sender.start()
        assert started.wait(30)
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.TransportError):  # no new connections once stopping
            httpx.get(f"{server.url}/livez", timeout=2)
        sender.join(60)
        assert server.process.wait(30) == 0
    response = result["response"]
    assert response.status_code == 200 and response.json()["results"][0]["score"] is not None
    assert any("stopped on SIGTERM" in line for line in server.stderr)


def test_max_concurrent_answers_503_with_retry_after_and_max_files_413(tiny_model: Path, photos) -> None:
    good = photos["photo0.png"].read_bytes()
    with running_server("--model", str(tiny_model), "--max-concurrent", "1", "--max-files", "2") as server:
        started = threading.Event()
        content, headers = _slow_body([("a.png", good)], 2.0, started)
        holder = threading.Thread(
            target=lambda: httpx.post(f"{server.url}/score", content=content, headers=headers, timeout=60)
        )
        holder.start()
        assert started.wait(30)
        time.sleep(0.3)
        busy = httpx.post(f"{server.url}/score", files=[("file", ("b.png", good))], timeout=30)
        probe = httpx.get(f"{server.url}/livez", timeout=10)  # probes are never limited
        holder.join(60)
        three = [("file", (f"{i}.png", good)) for i in range(3)]
        too_many = httpx.post(f"{server.url}/score", files=three, timeout=30)
        two = httpx.post(f"{server.url}/score", files=three[:2], timeout=30)
    assert busy.status_code == 503 and busy.headers["retry-after"].isdigit()
    assert "--max-concurrent" in busy.json()["error"]
    assert probe.status_code == 200
    assert too_many.status_code == 413 and "--max-files" in too_many.json()["error"]
    assert two.status_code == 200


def test_readyz_is_503_until_the_model_is_warm(tiny_model: Path) -> None:
    """In process: the warm-up is held back, so /readyz must say 503 while /livez says 200."""
    import reiqa
    from reiqa.service.app import create_app

    model = reiqa.load(tiny_model)
    release = threading.Event()
    app = create_app(model)
    fastapi_app = app.app
    original = fastapi_app.state.batcher._score

    def gated(jobs):
        if jobs and jobs[0][0] == "warm-up":
            release.wait(30)
        return original(jobs)

    fastapi_app.state.batcher._score = gated

    async def go() -> list[int]:
        codes = []
        async with fastapi_app.router.lifespan_context(fastapi_app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                codes.append((await client.get("/readyz")).status_code)
                codes.append((await client.get("/livez")).status_code)
                release.set()
                for _ in range(100):
                    response = await client.get("/readyz")
                    if response.status_code == 200:
                        break
                    await asyncio.sleep(0.05)
                codes.append(response.status_code)
        return codes

    assert asyncio.run(go()) == [503, 200, 200]


def test_a_request_past_its_time_out_is_503_and_its_work_is_dropped(tiny_model: Path, photos) -> None:
    """In process, with the encoders held back: the request waiting for them gets 503 with
    Retry-After at its time-out, and its images are never scored; a second one, which waits for
    the first one's pixels and then for the encoders, gets 503 at its own time-out."""
    import reiqa
    from reiqa.service.app import create_app

    image = photos["photo0.png"].read_bytes()  # 128x96: 24,576 pixels, charged twice (decoded, held)
    app = create_app(
        reiqa.load(tiny_model),
        request_timeout_s=1.0,
        inflight_pixels=60_000,
        request_pixels=60_000,
        warmup=False,
    )
    batcher = app.app.state.batcher
    release, scored = threading.Event(), []
    original = batcher._score

    def held(jobs):
        release.wait(30)
        scored.extend(name for name, *_ in jobs)
        return original(jobs)

    batcher._score = held

    async def go() -> list[httpx.Response]:
        async with app.app.router.lifespan_context(app.app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
                first = asyncio.create_task(client.post("/score", files=[("file", ("held.png", image))]))
                await asyncio.sleep(0.2)
                second = await client.post("/score", files=[("file", ("waiting.png", image))])
                answers = [await first, second]
                release.set()
                await asyncio.sleep(0.3)
                return answers

    held_answer, waiting_answer = asyncio.run(go())
    assert held_answer.status_code == 503 and "--request-timeout" in held_answer.json()["error"]
    assert waiting_answer.status_code == 503 and "--request-timeout" in waiting_answer.json()["error"]
    assert held_answer.headers["retry-after"].isdigit() and waiting_answer.headers["retry-after"].isdigit()
    # the first image was already in the encoders (that cannot be stopped); the second, queued
    # behind it, was dropped once its request gave up
    assert scored == ["held.png"]
    assert app.app.state.scoring.budget.in_use == 0
