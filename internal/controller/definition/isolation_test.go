package definition

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// ReleasesIsolated follows the namespace-role reading, and keeps the last
// HelmReleasesWritable while the roles are not read yet (after a restart), so
// a restart neither writes the condition twice nor records a Warning again.
func TestIsolationNamespaceRoles(t *testing.T) {
	def := &v1alpha1.ApplicationDefinition{}
	def.Spec.Release.ServiceAccountName = "deployer"
	var writers []string
	known := false
	r := &Reconciler{HelmReleaseWriters: func() ([]string, bool) { return writers, known }}

	if c := r.isolation(def); c.Status != metav1.ConditionTrue || c.Reason != ReasonServiceAccount {
		t.Fatalf("not read yet, nothing recorded: %+v", c)
	}
	writers, known = []string{"edit"}, true
	c := r.isolation(def)
	if c.Status != metav1.ConditionFalse || c.Reason != ReasonHelmReleasesWritable {
		t.Fatalf("edit writes HelmReleases: %+v", c)
	}
	meta.SetStatusCondition(&def.Status.Conditions, c)
	writers, known = nil, false // restarted
	if got := r.isolation(def); got.Reason != ReasonHelmReleasesWritable || got.Message != c.Message {
		t.Fatalf("not read yet after a restart: %+v", got)
	}
	known = true
	if got := r.isolation(def); got.Status != metav1.ConditionTrue {
		t.Fatalf("aggregation removed: %+v", got)
	}
}
