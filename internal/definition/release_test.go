package definition

import (
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/kustomize"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

func TestReleaseProblems(t *testing.T) {
	def := &v1alpha1.ApplicationDefinition{}
	def.Spec.Release.HealthCheckExprs = []kustomize.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap",
		HealthCheckExpressions: kustomize.HealthCheckExpressions{Current: "data.ready == 'yes'", Failed: "data.ready == "}}}
	def.Spec.Release.DependsOn = []helmv2.DependencyReference{
		{Name: "ok", ReadyExpr: "dep.status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')"},
		{Name: "notbool", ReadyExpr: "dep.metadata.name"},
		{Name: "unknown", ReadyExpr: "other.ready"},
	}
	got := strings.Join(ReleaseProblems(def), "\n")
	for _, want := range []string{
		"spec.release.healthCheckExprs[0].failed: ",
		"spec.release.dependsOn[1].readyExpr: must be boolean",
		"spec.release.dependsOn[2].readyExpr: ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	for _, notWant := range []string{"healthCheckExprs[0].current", "dependsOn[0]"} {
		if strings.Contains(got, notWant) {
			t.Errorf("a valid expression was refused (%s):\n%s", notWant, got)
		}
	}
}
