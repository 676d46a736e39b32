# oomwatch's images: one build stage, then one small final stage per binary.
#
#   docker build --target agent      -t oomwatch/agent .
#   docker build --target aggregator -t oomwatch/aggregator .
#   docker build --target oomctl     -t oomwatch/oomctl .
#
# test/deploy/dockerfile_test.go checks this file and runs the build stage's
# `go build` here, since no image can be built in CI.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binaries (SQLite is modernc.org/sqlite, pure Go, so no cgo), no
# build paths or symbol tables in them, and no gRPC tracing (grpcnotrace,
# see the Makefile's TAGS): the same flags as `make build`.
ENV CGO_ENABLED=0
RUN go build -tags=grpcnotrace -trimpath -ldflags='-s -w' -o /out/ ./agent ./aggregator ./oomctl

# The node agent runs as root (distroless's :latest, uid 0): it reads
# /dev/kmsg and other users' /proc/<pid>/cgroup; see deploy/README.md.
FROM gcr.io/distroless/static-debian12:latest AS agent
COPY --from=build /out/agent /usr/local/bin/agent
USER 0:0
ENTRYPOINT ["/usr/local/bin/agent"]

# The aggregator and oomctl run as distroless's nonroot user, given by
# number (65532 is "nonroot"): the kubelet can only verify runAsNonRoot
# against a numeric USER.
FROM gcr.io/distroless/static-debian12:nonroot AS aggregator
COPY --from=build /out/aggregator /usr/local/bin/aggregator
USER 65532:65532
EXPOSE 7443 9090 8080
ENTRYPOINT ["/usr/local/bin/aggregator"]

FROM gcr.io/distroless/static-debian12:nonroot AS oomctl
COPY --from=build /out/oomctl /usr/local/bin/oomctl
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/oomctl"]
