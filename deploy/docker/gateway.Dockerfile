# syntax=docker/dockerfile:1
# OCVR Realtime gateway: the WebSocket gateway, for builders with a container engine
# (Docker/BuildKit, Podman, Kaniko). From the repository root:
#
#   docker build -f deploy/docker/gateway.Dockerfile -t ghcr.io/ocvr/ocvr-gateway:TAG .
#   docker buildx build --platform linux/amd64,linux/arm64 -f deploy/docker/gateway.Dockerfile …
#
# Without an engine, `make images` builds the same image (deploy/imagebuild):
# the static binary at /usr/local/bin/gateway, user 65532:65532, no shell, no
# writes to the root filesystem (the chart mounts it read-only).
# deploy/imagebuild's tests keep this file and that image in agreement.

ARG GO_VERSION=1.26.8

# ---- build: a static binary (CGO_ENABLED=0), stripped and reproducible.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
# Stamped into the binary (--version, go_build_info): the build context has
# no .git, so -buildvcs cannot record the commit. Pass both, e.g.
# --build-arg VERSION=$(git describe --tags --always --dirty) --build-arg REVISION=$(git rev-parse HEAD)
ARG VERSION=dev
ARG REVISION=
WORKDIR /src
ENV GOWORK=off CGO_ENABLED=0 GOFLAGS=-trimpath
# Module files first, so the dependency download is cached across source changes.
COPY pkg/go.mod pkg/go.sum pkg/
COPY gateway/go.mod gateway/go.sum gateway/
RUN --mount=type=cache,target=/go/pkg/mod \
    cd gateway && go mod download
COPY pkg/ pkg/
COPY gateway/ gateway/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd gateway && GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -buildvcs=false \
      -ldflags="-s -w -buildid= -X github.com/ocvr/realtime/pkg/buildinfo.version=${VERSION} -X github.com/ocvr/realtime/pkg/buildinfo.revision=${REVISION}" \
      -o /out/gateway ./cmd/gateway

# ---- run: distroless static (CA certificates, /etc/passwd with nonroot,
# tzdata; no shell, no package manager). scratch works too if you add the CA
# bundle yourself.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gateway /usr/local/bin/gateway
USER 65532:65532
EXPOSE 8081 9081
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gateway"]
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title="ocvr-gateway" \
      org.opencontainers.image.description="OCVR Realtime gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
