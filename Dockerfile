# Courier worker image: a release build on Debian, run as a non-root user.
#
#   docker build -t courier .
#   docker run --rm -e COURIER__KAFKA__BROKERS=broker:9092 courier
#
# The configuration in config/ is baked in at /etc/courier; mount another directory there
# (or set COURIER_CONFIG and COURIER__* variables) to override it.

FROM rust:1-bookworm AS build
# librdkafka is compiled from source by rdkafka-sys.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY connectors ./connectors
COPY src ./src
RUN cargo build --release --locked --bin courier \
    && strip target/release/courier

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin courier
COPY --from=build /src/target/release/courier /usr/local/bin/courier
COPY config /etc/courier
ENV COURIER_CONFIG=/etc/courier/courier.toml \
    COURIER__LOG__FORMAT=json
USER courier
# The operations server (/healthz, /readyz, /metrics, /status); $PORT0 overrides the port.
EXPOSE 9464
# SIGTERM drains in-flight deliveries, commits and leaves the group; give it longer than
# consumer.drain_timeout_ms before a SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/courier"]
CMD ["run"]
