# The image compose.yaml builds: the project installed, run as an unprivileged user.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY services ./services
COPY migrations ./migrations
# Without the `embedded` extra: the image always runs against DATABASE_URL's PostgreSQL.
RUN pip install --no-cache-dir . && useradd --create-home ledger

USER ledger
ENV LEDGER_DATA_DIR=/home/ledger/.ledger
EXPOSE 8000
CMD ["community-ledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
