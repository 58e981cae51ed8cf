# Two images from one file:
#   target `product`  the sync worker (`acct2crm worker`) and the operator CLI
#                     (`acct2crm connectors apply`, `status`, ...): the product
#                     package alone, with its schemas and connector templates.
#   target `refcrm`   the reference CRM for demos and tests (the workbench under
#                     stack/), never part of the product image.
# docker-compose.yml builds both.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/acct2crm acct2crm \
    && mkdir -p /var/lib/acct2crm \
    && chown acct2crm:acct2crm /var/lib/acct2crm
ENV ACCT2CRM_HOME=/var/lib/acct2crm

FROM base AS refcrm
COPY stack ./stack
RUN pip install ./stack
USER acct2crm
EXPOSE 58080
CMD ["python", "-m", "refcrm", "--host", "0.0.0.0", "--port", "58080"]

FROM base AS product
USER acct2crm
EXPOSE 56066
CMD ["acct2crm", "worker"]
