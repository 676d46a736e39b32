# Pinned versions of the development tools, installed with `go install`
# into ./bin by the Makefile. Change a version here and nowhere else.
BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION        := v0.8.2
