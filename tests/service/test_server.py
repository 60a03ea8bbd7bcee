"""``reiqa serve`` as users meet it: a real server process spoken to over HTTP."""

from __future__ import annotations

import csv
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.service.conftest import httpx, running_server


@pytest.fixture(scope="module")
def server(tiny_model: Path):
    with running_server("--model", str(tiny_model), "--max-upload-mb", "4") as s:
        yield s


def _post(server, files: list[tuple[str, bytes]], **kwargs) -> httpx.Response:
    parts = [("file", (name, data, "application/octet-stream")) for name, data in files]
    return httpx.post(f"{server.url}/score", files=parts, headers=server.headers(), timeout=60, **kwargs)


def _cli_scores(model: Path, paths: list[Path], tmp_path: Path) -> dict[str, float | None]:
    out = tmp_path / "cli.csv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "reiqa",
            "score",
            *map(str, paths),
            "--model",
            str(model),
            "--device",
            "cpu",
            "-o",
            str(out),
        ],
        check=False,
        capture_output=True,
    )
    with out.open(newline="") as f:
        return {Path(r["path"]).name: (float(r["score"]) if r["score"] else None) for r in csv.DictReader(f)}


def test_health_and_model_card(server, tiny_model: Path) -> None:
    import reiqa

    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    card = httpx.get(f"{server.url}/model").json()
    model = reiqa.load(tiny_model)
    assert card["name"] == "test model"
    assert card["higher_is_better"] is True
    assert card["score_range"] == [0.0, 100.0]
    assert card["features"] == model.card.features.to_dict()
    assert card["model_id"] == model.model_id
    assert card["quality"] == {"arch": "resnet18"} and card["content"] is None


def test_scores_in_order_with_per_file_errors_and_equal_to_the_cli(
    server, photos, tiny_model, tmp_path
) -> None:
    order = ["photo2.png", "notes.jpg", "photo1.jpg", "cut.jpg", "photo0.png", "photo3.jpg"]
    response = _post(server, [(n, photos[n].read_bytes()) for n in order])
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["filename"] for r in results] == order
    by_name = {r["filename"]: r for r in results}
    assert by_name["notes.jpg"]["score"] is None and "not an image" in by_name["notes.jpg"]["error"]
    assert by_name["cut.jpg"]["score"] is None and "truncated" in by_name["cut.jpg"]["error"]
    cli = _cli_scores(tiny_model, [photos[n] for n in order], tmp_path)
    for name in order:
        if cli[name] is None:
            assert by_name[name]["score"] is None
        else:
            assert by_name[name]["error"] is None
            assert by_name[name]["score"] == pytest.approx(cli[name], abs=1e-3)
    assert len({r["score"] for r in results if r["score"] is not None}) == 4  # four different photos


def test_uploaded_names_are_labels_never_paths(server, photos) -> None:
    hostile = ["../../reiqa-escape.png", "/tmp/reiqa-abs.png", "a\\b.png", "x" * 300 + ".png"]
    data = photos["photo0.png"].read_bytes()
    response = _post(server, [(n, data) for n in hostile])
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["filename"] for r in results] == hostile
    assert len({r["score"] for r in results}) == 1 and results[0]["score"] is not None
    assert not Path("/tmp/reiqa-abs.png").exists()


def test_body_over_the_limit_is_413_before_it_is_read(server) -> None:
    body = b"x" * (5 * 2**20)
    response = _post(server, [("huge.jpg", body)])
    assert response.status_code == 413
    assert "limit of 4 MB" in response.json()["error"]

    def chunks():  # no Content-Length: refused once the stream passes the limit
        for i in range(0, len(body), 2**16):
            yield body[i : i + 2**16]

    streamed = httpx.post(
        f"{server.url}/score",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=abc"},
        timeout=60,
    )
    assert streamed.status_code == 413
    assert httpx.get(f"{server.url}/health").status_code == 200  # still serving


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": {"file": "x"}}, "multipart/form-data"),
        ({"content": b"{}", "headers": {"content-type": "application/json"}}, "multipart/form-data"),
        ({"files": [("photo", ("a.png", b"123"))]}, "no part named 'file'"),
        ({"content": b"--abc\r\ngarbage", "headers": {"content-type": "multipart/form-data"}}, "boundary"),
    ],
    ids=["urlencoded", "json", "no-file-part", "no-boundary"],
)
def test_bad_bodies_are_4xx_with_a_json_error(server, kwargs, message: str) -> None:
    response = httpx.post(f"{server.url}/score", timeout=30, **kwargs)
    assert 400 <= response.status_code < 500
    assert message in response.json()["error"]


def test_unknown_path_and_method(server) -> None:
    missing = httpx.get(f"{server.url}/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json()
    assert httpx.get(f"{server.url}/score").status_code == 405


def test_concurrent_requests_are_batched_and_each_gets_its_own_scores(server, photos) -> None:
    names = ["photo0.png", "photo1.jpg", "photo2.png", "photo3.jpg"]
    alone = {n: _post(server, [(n, photos[n].read_bytes())]).json()["results"][0]["score"] for n in names}

    def one(i: int) -> tuple[str, float]:
        name = names[i % 4]
        result = _post(server, [(name, photos[name].read_bytes())]).json()["results"][0]
        return name, result["score"]

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, range(48)))
    assert len(got) == 48
    for name, score in got:
        assert score == pytest.approx(alone[name], abs=1e-3)


def test_page_is_self_contained(server) -> None:
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert 'id="gallery"' in text and "Download CSV" in text
    for outside in ("http://", "https://", "//cdn", "@import"):
        assert outside not in text, outside


def test_token_is_required_when_set(tiny_model: Path, photos) -> None:
    with running_server(
        "--model", str(tiny_model), "--token-env", "REIQA_TEST_TOKEN", env={"REIQA_TEST_TOKEN": "s3cr3t"}
    ) as server:
        for method, path in (("GET", "/health"), ("GET", "/model"), ("POST", "/score"), ("GET", "/nope")):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cr3t"}):
                response = httpx.request(method, f"{server.url}{path}", headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
        ok = _post(server, [("photo0.png", photos["photo0.png"].read_bytes())])
        assert ok.status_code == 200 and ok.json()["results"][0]["score"] is not None
        assert httpx.get(f"{server.url}/").status_code == 200  # the page holds no data; it asks for the token


def test_token_env_must_be_set(tiny_model: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reiqa",
            "serve",
            "--model",
            str(tiny_model),
            "--token-env",
            "REIQA_UNSET_VAR",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in __import__("os").environ.items() if k != "REIQA_UNSET_VAR"},
    )
    assert result.returncode == 1
    assert "REIQA_UNSET_VAR" in result.stderr and "Traceback" not in result.stderr


def test_non_loopback_without_token_warns(tiny_model: Path) -> None:
    with running_server("--model", str(tiny_model), "--host", "0.0.0.0") as server:
        assert any("without a token" in line for line in server.stderr)
    with running_server("--model", str(tiny_model)) as server:
        assert not any("without a token" in line for line in server.stderr)


def test_busy_port_is_one_line_error(server, tiny_model: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "reiqa", "serve", "--model", str(tiny_model), "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
