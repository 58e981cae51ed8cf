# The acct2crm image: the sync worker (`acct2crm worker`), the reference CRM
# (`python -m acct2crm.refcrm`) and the CLI. docker-compose.yml builds it once
# for its crm, worker and connectors services.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The project's assets (connectors/, schemas/, stack/sql/) are read from the
# working directory when the package is not an editable install.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
RUN pip install .
COPY schemas ./schemas
COPY connectors ./connectors
COPY stack/sql ./stack/sql

RUN useradd --system --uid 10001 --home-dir /var/lib/acct2crm acct2crm \
    && mkdir -p /var/lib/acct2crm \
    && chown acct2crm:acct2crm /var/lib/acct2crm
USER acct2crm

ENV ACCT2CRM_HOME=/var/lib/acct2crm
EXPOSE 58080 56066
CMD ["acct2crm", "worker"]
