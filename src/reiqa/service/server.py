"""``reiqa serve`` from start to end: the token, the optional packages, the socket, the model,
and uvicorn. Messages go to the ``reiqa.service`` logger (the command line shows them on
stderr)."""

from __future__ import annotations

import ipaddress
import logging
import os
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


def run(app: object, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve ``app`` on ``sock`` until interrupted."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("reiqa serve: listening on http://%s:%s (Ctrl-C stops)", shown, port)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


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
    """FastAPI, uvicorn and python-multipart can be imported (a one-line error otherwise)."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ReiqaError(
            f"reiqa serve needs FastAPI, uvicorn and python-multipart ({exc.name} is missing): "
            "pip install 'reiqa[serve]'"
        ) from exc


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str = "default",
    device: str = "auto",
    backend: str = "auto",
    token_env: str | None = None,
    **app_options: object,
) -> None:
    """``reiqa serve``: check the token and the packages, bind ``host``:``port`` before the
    model is loaded (a busy port fails at once), load the model (``backend`` 'auto': the engine
    for a long-lived model) and serve it until interrupted; ``app_options`` go to
    ``reiqa.service.app.create_app``."""
    token = token_from_env(token_env)
    check_installed()
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
    run(create_app(net, token=token, **app_options), sock)
