# syntax=docker/dockerfile:1
# kiln: multi-stage build. The dependency layer is cached until Cargo.toml or
# Cargo.lock change (a dummy crate with the real manifests is built first).
#
#   docker build -t kiln .
#   docker build -t kiln:cuda --build-arg FEATURES=cuda \
#     --build-arg RUNTIME_IMAGE=nvidia/cuda:13.0.0-runtime-ubuntu24.04 .
#   docker run -p 8080:8080 -v kiln-models:/var/lib/kiln/models kiln
#
# The cuda feature downloads LLVM while building (network access needed) and its
# image needs the NVIDIA container toolkit at run time; wgpu needs a Vulkan driver.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
ARG FEATURES=""
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/forward.rs \
 && echo 'fn main() {}' > benches/load.rs \
 && cargo build --release --locked --features "${FEATURES}" \
 && rm -rf src benches
COPY src src
COPY benches benches
COPY config config
COPY examples examples
COPY assets assets
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --features "${FEATURES}" \
 && mkdir -p /out/models

FROM ${RUNTIME_IMAGE}
COPY --from=build /src/target/release/kiln /usr/local/bin/kiln
COPY --from=build /src/config /srv/kiln/config
COPY --from=build /src/examples/data /srv/kiln/data
COPY --from=build --chown=65532:65532 /out/models /var/lib/kiln/models
WORKDIR /srv/kiln
ENV KILN_SERVER__LISTEN=0.0.0.0:8080 \
    KILN_STORE__DIR=/var/lib/kiln/models \
    KILN_TRAINING__DATA_DIR=/srv/kiln/data \
    KILN_TELEMETRY__FORMAT=json
VOLUME ["/var/lib/kiln/models"]
EXPOSE 8080
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/kiln", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/kiln"]
CMD ["serve"]
