# gatehouse, for Kubernetes (deploy/kubernetes/) or any container runtime.
#
#   docker build -t gatehouse:0.1.0 .
#
# The build needs no protoc (the etcd client's gRPC code is committed) and
# tests exactly Cargo.lock (--locked). The runtime image holds the binary,
# the CA bundle (TLS origination to public backends) and a non-root user.

FROM rust:1-bookworm AS build
WORKDIR /src
# Any build script that still wanted protoc fails instead of finding one.
ENV PROTOC=/nonexistent/protoc
COPY . .
RUN cargo build --release --locked --bin gatehouse \
 && cp target/release/gatehouse /usr/local/bin/gatehouse

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 gatehouse \
 && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/gatehouse \
      --create-home --shell /usr/sbin/nologin gatehouse \
 && mkdir -p /var/cache/gatehouse \
 && chown gatehouse:gatehouse /var/cache/gatehouse
COPY --from=build /usr/local/bin/gatehouse /usr/local/bin/gatehouse
# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 65532:65532
# 8443: the data plane (deploy/kubernetes maps the Gateway's port 443 here);
# 15000: the admin endpoint (/ready, /metrics, /config_dump).
EXPOSE 8443 15000
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["--help"]
