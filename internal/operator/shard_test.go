package operator

import (
	"testing"

	"github.com/fluxcd/pkg/apis/kustomize"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/tenancy"
)

// A shard refuses what the managing operator refuses, so refused release
// settings reach no shard's HelmReleases either.
func TestShardRefusesWhatTheManagerRefuses(t *testing.T) {
	def := &v1alpha1.ApplicationDefinition{}
	if why := (&shardServer{}).refused(def); why != "" {
		t.Errorf("plain definition refused: %s", why)
	}
	if why := (&shardServer{requireSA: true}).refused(def); why != "ServiceAccountRequired" {
		t.Errorf("--require-service-account, no service account: %q", why)
	}
	if why := (&shardServer{requireSA: true, policy: tenancy.Policy{DefaultServiceAccount: "r"}}).refused(def); why != "" {
		t.Errorf("a default service account satisfies --require-service-account: %q", why)
	}
	def.Spec.Release.HealthCheckExprs = []kustomize.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap",
		HealthCheckExpressions: kustomize.HealthCheckExpressions{Current: "has(self.data"}}}
	if why := (&shardServer{}).refused(def); why != "InvalidRelease" {
		t.Errorf("invalid CEL: %q", why)
	}
}
