# chartkind — turn Helm charts into Kubernetes kinds.
#
# The two commands a newcomer needs:
#   make demo   run chartkind on a local control plane (no Docker, no cluster)
#   make test   run every test: unit, integration (real kube-apiserver + etcd)
#               and end-to-end (real Flux source-controller + helm-controller)

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN            ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(BIN)/controller-gen
VERSION        ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS        := -s -w -X github.com/chartkind/chartkind/internal/cli.Version=$(VERSION)
GO_TEST_FLAGS  ?= -count=1
IMG            ?= ghcr.io/chartkind/chartkind:$(VERSION)

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the ApplicationDefinition CRD and RBAC under config/, and the Helm chart's copies of them.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=chartkind-operator paths=./internal/... output:rbac:artifacts:config=config/rbac
	rm -f charts/chartkind/files/crds/*.yaml && cp config/crd/bases/*.yaml charts/chartkind/files/crds/
	cp config/rbac/role.yaml config/rbac/leader_election_role.yaml charts/chartkind/files/rbac/

.PHONY: verify-generated
verify-generated: generate manifests ## Fail when generated files are out of date.
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: testbin
testbin: ## Build kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kubectl, KWOK, Flux controllers and controller-gen into bin/ (cached).
	hack/testbin.sh

$(CONTROLLER_GEN):
	hack/testbin.sh controller-gen

.PHONY: test-unit
test-unit: ## Fast loop: tests that need no control plane.
	go test $(GO_TEST_FLAGS) ./api/... ./internal/... ./cmd/...

.PHONY: test
test: testbin vet ## Every test: unit, integration and end-to-end (builds the control plane first).
	go test $(GO_TEST_FLAGS) ./...

.PHONY: fuzz
fuzz: ## Fuzz the schema converter for FUZZTIME (default 60s).
	go test ./internal/schemaconv/ -run '^$$' -fuzz FuzzConvert -fuzztime $${FUZZTIME:-60s}

.PHONY: bench
bench: bench-go bench-operator ## All benchmarks.

.PHONY: bench-go
bench-go: ## Go benchmarks (schema conversion against Helm's own validation as baseline).
	go test ./internal/... -run '^$$' -bench . -benchmem

.PHONY: bench-operator
bench-operator: testbin ## The operator at scale on a real API server: KINDS kinds × OBJECTS objects, printed as a table.
	go run ./test/bench -kinds $${KINDS:-10} -objects $${OBJECTS:-1000} $(BENCH_FLAGS)

##@ Run

.PHONY: demo
demo: testbin ## Run chartkind on a local control plane with the real Flux controllers; Ctrl-C stops everything.
	go run ./test/demo $(DEMO_FLAGS)

##@ Build

.PHONY: build
build: ## Build bin/chartkind.
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/chartkind ./cmd/chartkind

.PHONY: run
run: build ## Print the CLI's help.
	$(BIN)/chartkind help

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine; nothing else does).
	docker build --build-arg VERSION=$(VERSION) --build-arg GO_VERSION=$$(sed -n 's/^go //p' go.mod) -t $(IMG) .
