# syntax=docker/dockerfile:1
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/chartkind/chartkind/internal/cli.Version=${VERSION}" \
      -o /out/chartkind ./cmd/chartkind

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chartkind /chartkind
USER 65532:65532
ENTRYPOINT ["/chartkind"]
