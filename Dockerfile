# syntax=docker/dockerfile:1
#
# The chartkind operator image: `make docker-build` builds it (the only step
# of this repository that needs a Docker engine; docs/install.md). The build
# stage runs the same `go build` line as `make build`; the image holds only the
# static binary, on distroless, as a non-root user.

# GO_VERSION must satisfy go.mod's go line; `make docker-build` passes it from go.mod.
ARG GO_VERSION=1.26.8

# Build on the builder's own platform and cross-compile (CGO is off), so
# multi-platform builds (docker buildx --platform linux/amd64,linux/arm64)
# need no emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# GOTOOLCHAIN=local: fail rather than download another Go toolchain.
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w -X github.com/chartkind/chartkind/internal/cli.Version=${VERSION}" \
      -o /out/chartkind ./cmd/chartkind

# static: no libc needed (CGO_ENABLED=0); nonroot: uid/gid 65532, which the
# Helm chart's runAsNonRoot can verify because USER is numeric.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="chartkind" \
      org.opencontainers.image.description="Turns Helm charts into Kubernetes kinds, mirrored to Flux HelmReleases" \
      org.opencontainers.image.source="https://github.com/chartkind/chartkind" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/chartkind /chartkind
USER 65532:65532
ENTRYPOINT ["/chartkind"]
CMD ["operator"]
