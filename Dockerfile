# reiqa serve in a container: CPU torch, the embedded default model, a non-root user.
#
#   docker build -t reiqa .
#   docker run --rm -p 8000:8000 -e REIQA_TOKEN=$(openssl rand -hex 16) reiqa --token-env REIQA_TOKEN
#   docker stop -t 40 <container>    # SIGTERM: requests in flight get --shutdown-timeout (30 s)
#
# Arguments after the image name are options of `reiqa serve` (see `reiqa serve --help`).

FROM python:3.12-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# CPU wheels of torch: the default index's wheels bring about 4 GB of CUDA libraries
RUN pip install "torch>=2.4,<2.15" "torchvision>=0.19,<0.30" --index-url https://download.pytorch.org/whl/cpu
COPY --from=wheel /wheels /wheels
RUN pip install "$(ls /wheels/reiqa-*.whl)[serve]" && rm -rf /wheels \
    && useradd --system --uid 10001 --create-home --home-dir /home/reiqa reiqa
USER 10001
WORKDIR /home/reiqa
EXPOSE 8000
# /livez needs no token; the slim image has no curl, so Python asks
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=4).status != 200)"]
ENTRYPOINT ["reiqa", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD []
