# kubeguard's image: built with the locked dependencies, run as a non-root user on distroless
# (no shell, no package manager). Not built in CI.
#   docker build -t kubeguard:0.1.0 .
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY loadtests ./loadtests
RUN cargo build --release --locked --bin kubeguard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kubeguard /usr/local/bin/kubeguard
COPY config/kubeguard.yaml /etc/kubeguard/kubeguard.yaml
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/kubeguard"]
CMD ["serve", "--config=/etc/kubeguard/kubeguard.yaml"]
