# Westique Rewards: `rewards serve` in a slim image, as a non-root user.
# With no DATABASE_URL it starts its embedded PostgreSQL under /data (mount a volume there);
# in production set DATABASE_URL to the managed PostgreSQL.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rewards ./rewards
COPY incentives ./incentives
COPY sql ./sql
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REWARDS_HOST=0.0.0.0 \
    REWARDS_PORT=8000 \
    REWARDS_DATA_DIR=/data
COPY --from=build /install /usr/local
RUN useradd --create-home --uid 10001 rewards \
    && mkdir -p /data \
    && chown rewards:rewards /data
USER 10001
WORKDIR /home/rewards
VOLUME ["/data"]
EXPOSE 8000
# `rewards health` asks the service on REWARDS_PORT, so a container run with another port stays healthy
HEALTHCHECK --interval=30s --timeout=5s CMD ["rewards", "health"]
CMD ["rewards", "serve", "--workers", "2"]
