# syntax=docker/dockerfile:1

# onprem-agent-exporter container image.
#
#   docker build -t onprem-agent-exporter .
#   docker run -p 9877:9877 onprem-agent-exporter demo --listen 0.0.0.0:9877
#   docker run -p 9877:9877 \
#     -v "$PWD/config.yaml:/etc/onprem-agent-exporter/config.yaml:ro" \
#     -v "$PWD/secrets:/run/secrets:ro" \
#     onprem-agent-exporter
#
# The build stage runs the same `cargo build --release --locked` as CI, on a pinned official Rust image whose
# Debian release (bookworm) matches the runtime's, so the binary's glibc is the one it runs against.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked
# Directories the runtime image needs but cannot create: it has no shell.
RUN mkdir -p /out/etc/onprem-agent-exporter /out/var/lib/onprem-agent-exporter

# distroless/cc has glibc, libgcc, CA certificates and tzdata, and no shell, package manager or curl.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/onprem-agent-exporter /usr/local/bin/onprem-agent-exporter
COPY --from=build --chown=65532:65532 /out/etc/onprem-agent-exporter /etc/onprem-agent-exporter
COPY --from=build --chown=65532:65532 /out/var/lib/onprem-agent-exporter /var/lib/onprem-agent-exporter

# `run` reads its configuration from here unless --config says otherwise. Token files are mounted separately
# (for example under /run/secrets) and named by `token_file:` in the configuration.
ENV ONPREM_AGENT_EXPORTER_CONFIG=/etc/onprem-agent-exporter/config.yaml
# The exporter's state (alert state, notification log) survives restarts here.
VOLUME /var/lib/onprem-agent-exporter
WORKDIR /var/lib/onprem-agent-exporter

# distroless's `nonroot` user, uid 65532.
USER 65532:65532
EXPOSE 9877

# The image has no curl: the binary checks its own /healthz (http://127.0.0.1:9877/healthz by default). With TLS
# on (--web.config.file), set ONPREM_AGENT_EXPORTER_HEALTHCHECK_URL=https://127.0.0.1:9877/healthz and
# ONPREM_AGENT_EXPORTER_HEALTHCHECK_INSECURE_SKIP_VERIFY=true (or ..._CA_FILE); /healthz needs no credentials.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/onprem-agent-exporter", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/onprem-agent-exporter"]
CMD ["run"]
