# Devloom image: the `devloom` binary on a slim Debian.
FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p devloom

FROM debian:bookworm-slim
COPY --from=build /src/target/release/devloom /usr/local/bin/devloom
ENTRYPOINT ["devloom"]
CMD ["demo"]
