package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
)

// TestDefinitionReleasesIsolated: a definition without serviceAccountName is
// served (Ready unchanged) and says ReleasesIsolated=False, NoServiceAccount,
// naming the risk, with a Warning event; setting serviceAccountName turns it
// True.
func TestDefinitionReleasesIsolated(t *testing.T) {
	startOperator(t)
	def := createDefinition(t, widgetDefinition("isowidget", "IsoWidget"))
	c := meta.FindStatusCondition(def.Status.Conditions, "ReleasesIsolated")
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "NoServiceAccount" ||
		!strings.Contains(c.Message, "ClusterRoleBinding") || !strings.Contains(c.Message, "serviceAccountName") {
		t.Fatalf("ReleasesIsolated: %+v", c)
	}
	waitEvent(t, "default", def.UID, "NoServiceAccount", "Warning")

	def.Spec.Release.ServiceAccountName = "widget-deployer"
	if err := env.Client.Update(ctxT(t), def); err != nil {
		t.Fatal(err)
	}
	def = waitDefinitionReason(t, def.Name, "Serving")
	if c := meta.FindStatusCondition(def.Status.Conditions, "ReleasesIsolated"); c == nil || c.Status != metav1.ConditionTrue || c.Reason != "ServiceAccount" {
		t.Fatalf("ReleasesIsolated with a service account: %+v", c)
	}
}

// TestRequireServiceAccount: with --require-service-account the operator
// refuses a definition without serviceAccountName (Ready=False,
// ServiceAccountRequired; no CRD) and serves one with it.
func TestRequireServiceAccount(t *testing.T) {
	logs := &testenv.LogBuffer{}
	op, err := operator.New(env.Config, operator.Options{
		ChartsDir:               filepath.Join(env.RootDir, "examples", "charts"),
		MetricsBindAddress:      "0",
		MaxConcurrentReconciles: 4,
		Logger:                  logs.Logger("[op] ", 1),
		RequireServiceAccount:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("operator did not stop")
		}
		if t.Failed() {
			t.Logf("operator log:\n%s", logs.String())
		}
	})

	refused := widgetDefinition("reqwidget", "ReqWidget")
	if err := env.Client.Create(ctxT(t), refused); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, refused.Name) })
	def := waitDefinitionReason(t, refused.Name, "ServiceAccountRequired")
	if c := meta.FindStatusCondition(def.Status.Conditions, "Ready"); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "--require-service-account") {
		t.Fatalf("Ready: %+v", c)
	}
	if def.Status.SchemaDigest != "" {
		t.Fatalf("refused definition is served: %+v", def.Status)
	}

	ok := widgetDefinition("sawidget", "SaWidget")
	ok.Spec.Release.ServiceAccountName = "widget-deployer"
	createDefinition(t, ok)
}
