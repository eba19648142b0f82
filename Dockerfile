# The image of docker-compose.yml's cartrecover services: the package with its PostgreSQL, NATS and Redis extras.
# `docker build -t cartrecover .`; the command is `cartrecover serve` unless a service names another.

# The dashboard's charting library, pinned by dashboard/package-lock.json (as `make install` does).
FROM node:22-slim AS dashboard
WORKDIR /build
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim
# LightGBM's wheels load OpenMP's runtime, which the slim image does not have.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY --from=dashboard /build/node_modules/chart.js/dist/chart.umd.min.js src/cartrecover/entrypoints/http/static/vendor/
COPY --from=dashboard /build/node_modules/chart.js/LICENSE.md src/cartrecover/entrypoints/http/static/vendor/chart.js-LICENSE.md
RUN pip install --no-cache-dir '.[postgres,nats,redis]'

RUN useradd --system --create-home --home-dir /var/lib/cartrecover cartrecover
USER cartrecover
WORKDIR /var/lib/cartrecover
ENV CARTRECOVER_DATA_DIR=/var/lib/cartrecover
EXPOSE 8080
CMD ["cartrecover", "serve", "--host", "0.0.0.0"]
