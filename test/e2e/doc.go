// Package e2e holds end-to-end tests that run against a real control plane (kube-apiserver,
// etcd, and the Flux source- and helm-controllers) started by internal/testenv. They need the
// binaries built by `make testbin` and are part of `go test ./...`.
package e2e
