# One image for the operator, the archiver and replay: `pyrostore operator | archive | replay ...`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md requirements-runtime.lock ./
COPY pyrostore ./pyrostore
# Exactly the locked dependencies (hash-checked), then the package itself.
RUN python -m venv /opt/pyrostore \
    && /opt/pyrostore/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
        --only-binary=:all: -r requirements-runtime.lock \
    && /opt/pyrostore/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps . \
    && /opt/pyrostore/bin/python -m compileall -q /opt/pyrostore

FROM python:3.11-slim
COPY --from=build /opt/pyrostore /opt/pyrostore
# The UID the operator's pod specs run as (runAsNonRoot); the root filesystem may be read-only.
RUN useradd --uid 10001 --no-create-home --home-dir /tmp pyrostore
ENV PATH=/opt/pyrostore/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 10001
ENTRYPOINT ["pyrostore"]
CMD ["--help"]
