# syntax=docker/dockerfile:1
# kiln: multi-stage build. The dependency layer is cached until Cargo.toml or
# Cargo.lock change (a dummy crate with the real manifests is built first).
#
#   docker build -t kiln .
#   docker run -p 8080:8080 -e KILN_AUTH__TOKEN=$(openssl rand -hex 24) \
#     -v kiln-models:/var/lib/kiln/models kiln
#   docker build --target gpu -t kiln:gpu .
#   docker run --gpus all -p 8080:8080 -e KILN_AUTH__TOKEN=$(openssl rand -hex 24) \
#     -v kiln-models:/var/lib/kiln/models kiln:gpu
# kiln serves on 0.0.0.0 here, so it refuses to start without a token (protected
# mode); KILN_AUTH__ALLOW_UNAUTHENTICATED=true opts out, for trusted networks only.
#   docker build -t kiln:cuda --build-arg FEATURES=cuda \
#     --build-arg RUNTIME_IMAGE=nvidia/cuda:13.0.0-runtime-ubuntu24.04 .
#
# The default (last) stage is the CPU image on distroless. The `gpu` target is the
# wgpu (Vulkan) image: Debian with the Vulkan loader, kiln built with the wgpu
# feature and KILN_MODEL__BACKEND=wgpu. On NVIDIA GPUs the NVIDIA container toolkit
# injects the driver and its Vulkan ICD (hence NVIDIA_DRIVER_CAPABILITIES includes
# graphics); elsewhere Mesa's drivers, lavapipe (software) included, are in the image.
# The cuda feature downloads LLVM while building (network access needed) and its
# image needs the NVIDIA container toolkit at run time.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# Same Debian release as RUST_IMAGE, so the binary finds the glibc it was linked with.
ARG GPU_RUNTIME_IMAGE=debian:bookworm-slim

# The real manifests with a dummy crate: building it caches the dependencies. Cargo
# wants a file for every [[bench]] the manifest names, so each gets an empty main.
FROM ${RUST_IMAGE} AS skeleton
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && awk -F'"' '/^\[\[bench\]\]/ { bench = 1 } \
      bench && /^name *=/ { print "fn main() {}" > ("benches/" $2 ".rs"); bench = 0 }' \
      Cargo.toml

FROM skeleton AS build
ARG FEATURES=""
RUN cargo build --release --locked --features "${FEATURES}" \
 && rm -rf src benches
COPY src src
COPY benches benches
COPY config config
COPY examples examples
COPY assets assets
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --features "${FEATURES}" \
 && mkdir -p /out/models

# The same build with the wgpu feature, its dependency layer cached on its own.
FROM skeleton AS build-gpu
ARG FEATURES=""
RUN cargo build --release --locked --features "wgpu ${FEATURES}" \
 && rm -rf src benches
COPY src src
COPY benches benches
COPY config config
COPY examples examples
COPY assets assets
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --features "wgpu ${FEATURES}" \
 && mkdir -p /out/models

# The wgpu (Vulkan) image: docker build --target gpu -t kiln:gpu .
FROM ${GPU_RUNTIME_IMAGE} AS gpu
# Versions come from the pinned Debian release: exact package pins would break the
# build whenever a point release replaces them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home \
      --shell /usr/sbin/nologin nonroot \
 && mkdir -p /var/cache/kiln/autotune \
 && chown -R 65532:65532 /var/cache/kiln
COPY --from=build-gpu /src/target/release/kiln /usr/local/bin/kiln
COPY --from=build-gpu /src/config /srv/kiln/config
COPY --from=build-gpu /src/examples/data /srv/kiln/data
COPY --from=build-gpu --chown=65532:65532 /out/models /var/lib/kiln/models
# With the store in a bucket, loaded weights are cached here (an empty directory).
COPY --from=build-gpu --chown=65532:65532 /out/models /var/cache/kiln/store
WORKDIR /srv/kiln
# The autotune cache is per node (tuned kernels fit one GPU model and driver):
# keep it in a local volume, never on the shared model store.
ENV KILN_SERVER__LISTEN=0.0.0.0:8080 \
    KILN_STORE__DIR=/var/lib/kiln/models \
    KILN_STORE__CACHE_DIR=/var/cache/kiln/store \
    KILN_TRAINING__DATA_DIR=/srv/kiln/data \
    KILN_TELEMETRY__FORMAT=json \
    KILN_MODEL__BACKEND=wgpu \
    KILN_MODEL__AUTOTUNE_CACHE_DIR=/var/cache/kiln/autotune \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics
VOLUME ["/var/lib/kiln/models"]
EXPOSE 8080
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/kiln", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/kiln"]
CMD ["serve"]

# The CPU image, the default target (keep it last).
FROM ${RUNTIME_IMAGE} AS cpu
COPY --from=build /src/target/release/kiln /usr/local/bin/kiln
COPY --from=build /src/config /srv/kiln/config
COPY --from=build /src/examples/data /srv/kiln/data
COPY --from=build --chown=65532:65532 /out/models /var/lib/kiln/models
# With the store in a bucket, loaded weights are cached here (an empty directory).
COPY --from=build --chown=65532:65532 /out/models /var/cache/kiln/store
WORKDIR /srv/kiln
ENV KILN_SERVER__LISTEN=0.0.0.0:8080 \
    KILN_STORE__DIR=/var/lib/kiln/models \
    KILN_STORE__CACHE_DIR=/var/cache/kiln/store \
    KILN_TRAINING__DATA_DIR=/srv/kiln/data \
    KILN_TELEMETRY__FORMAT=json
VOLUME ["/var/lib/kiln/models"]
EXPOSE 8080
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/kiln", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/kiln"]
CMD ["serve"]
