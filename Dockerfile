# Devloom image: the stripped `devloom` binary on a slim Debian, as a non-root user.
# Build: docker build -t devloom:local .   (or: podman build -t devloom:local .)
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: a change to Devloom's code reuses them.
COPY Cargo.toml Cargo.lock ./
COPY schemas/Cargo.toml schemas/
COPY operators/Cargo.toml operators/
COPY pipeline/Cargo.toml pipeline/
COPY benches/Cargo.toml benches/
RUN for crate in schemas operators pipeline benches; do \
      mkdir -p $crate/src && echo 'fn main() {}' > $crate/src/main.rs && touch $crate/src/lib.rs; \
    done \
 && mkdir -p benches/benches && for b in otlp_decode graph scorer; do echo 'fn main() {}' > benches/benches/$b.rs; done \
 && cargo build --release --locked -p devloom \
 && rm -rf schemas/src operators/src pipeline/src benches/src benches/benches
COPY . .
# Touch the sources so cargo rebuilds Devloom's crates over the placeholders.
RUN find schemas operators pipeline -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p devloom \
 && strip target/release/devloom

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/devloom devloom \
 && install -d -o devloom -g devloom /var/lib/devloom/state
COPY --from=build /src/target/release/devloom /usr/local/bin/devloom
USER devloom
WORKDIR /var/lib/devloom
# Liveness of the binary and its configuration ($DEVLOOM_CONFIG); Devloom has no HTTP
# endpoint yet to probe.
HEALTHCHECK --interval=30s --timeout=5s CMD ["devloom", "validate"]
ENTRYPOINT ["devloom"]
CMD ["demo"]
