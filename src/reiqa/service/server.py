"""``reiqa serve`` from start to end: the token, the optional packages, the socket, the model,
and uvicorn. Messages go to the ``reiqa.service`` logger (the command line shows them on
stderr)."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket

from reiqa.errors import ReiqaError

log = logging.getLogger("reiqa.service")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: a free one, see ``getsockname``)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ReiqaError(f"--host {host}: not an address of this machine ({exc})") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ReiqaError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(
    app: object,
    sock: socket.socket,
    *,
    header_timeout_s: float = 10.0,
    keep_alive_s: float = 5.0,
    shutdown_timeout_s: float = 30.0,
) -> None:
    """Serve ``app`` on ``sock`` until SIGTERM or Ctrl-C.

    SIGTERM is a graceful stop that returns normally (exit 0): no new connections are accepted,
    requests in flight get up to ``shutdown_timeout_s`` seconds to be answered, then the rest
    are cancelled. Connections get ``header_timeout_s`` for each request's headers (408 and
    closed past it) and stay open ``keep_alive_s`` between requests."""
    import uvicorn

    from reiqa.service.protocol import with_header_timeout

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("reiqa serve: listening on http://%s:%s (Ctrl-C stops)", shown, port)
    config = uvicorn.Config(
        app,
        log_config=None,  # the reiqa.service handlers (reiqa.service.logs) are already set
        access_log=False,  # one line per request comes from the app, with its images
        lifespan="on",
        http=with_header_timeout(header_timeout_s),
        timeout_keep_alive=max(1, round(keep_alive_s)),
        timeout_graceful_shutdown=max(1, round(shutdown_timeout_s)),
    )
    stopping: list[int] = []
    # uvicorn re-raises the signal it stopped on once it is done; with this handler that ends
    # the process normally instead of killing it with the signal
    previous = signal.signal(signal.SIGTERM, lambda sig, _: stopping.append(sig))
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopping:
        log.info("reiqa serve: stopped on SIGTERM")


def token_from_env(name: str | None) -> str | None:
    """The token held by environment variable ``name`` (None: no token); an unset or empty
    variable is an error, so that a typo never serves without the token."""
    if name is None:
        return None
    token = os.environ.get(name)
    if not token:
        raise ReiqaError(f"--token-env {name}: environment variable {name} is unset or empty")
    return token


def check_installed() -> None:
    """The serve extra's packages can be imported (a one-line error otherwise)."""
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ReiqaError(
            f"reiqa serve needs FastAPI, uvicorn, python-multipart and prometheus-client "
            f"({exc.name} is missing): pip install 'reiqa[serve]'"
        ) from exc


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str = "default",
    device: str = "auto",
    backend: str = "auto",
    token_env: str | None = None,
    log_format: str = "plain",
    header_timeout_s: float = 10.0,
    shutdown_timeout_s: float = 30.0,
    request_pixels: int = 64_000_000,
    inflight_pixels: int = 64_000_000,
    **app_options: object,
) -> None:
    """``reiqa serve``: check the token and the packages, bind ``host``:``port`` before the
    model is loaded (a busy port fails at once), load the model (``backend`` 'auto': the engine
    for a long-lived model) and serve it until SIGTERM or Ctrl-C (see :func:`run`);
    ``app_options`` go to ``reiqa.service.app.create_app``."""
    token = token_from_env(token_env)
    check_installed()
    from reiqa.service.logs import configure

    configure(log_format)
    if request_pixels > inflight_pixels:
        raise ReiqaError(
            f"--request-megapixels {request_pixels / 1e6:g} is more than --inflight-megapixels "
            f"{inflight_pixels / 1e6:g}: a request that big could never be answered"
        )
    if not is_loopback(host) and token is None:
        log.warning(
            "warning: listening on %s without a token: anyone who can reach this machine can use the "
            "service (set --token-env NAME)",
            host,
        )
    sock = bind(host, port)
    from reiqa.inference import load
    from reiqa.runtime import tune_allocator
    from reiqa.service.app import create_app

    tune_allocator()
    net = load(model, backend=backend, device=device)
    service = create_app(
        net, token=token, request_pixels=request_pixels, inflight_pixels=inflight_pixels, **app_options
    )
    run(service, sock, header_timeout_s=header_timeout_s, shutdown_timeout_s=shutdown_timeout_s)
