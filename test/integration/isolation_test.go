package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/kustomize"

	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/tenancy"
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
	startOperatorWith(t, operator.Options{RequireServiceAccount: true})

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

// startOperatorWith runs an operator with opts (and the suite's charts,
// metrics off, 4 workers) until the test ends.
func startOperatorWith(t *testing.T, opts operator.Options) {
	t.Helper()
	logs := &testenv.LogBuffer{}
	opts.ChartsDir = filepath.Join(env.RootDir, "examples", "charts")
	opts.MetricsBindAddress = "0"
	opts.MaxConcurrentReconciles = 4
	opts.Logger = logs.Logger("[op] ", 1)
	op, err := operator.New(env.Config, opts)
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
}

// TestMultiTenantProfile runs the operator with the flags of the chart's
// multi-tenant profile (test/chart TestMultiTenantProfileRenders):
// --default-service-account and --no-cross-namespace-refs. A definition
// without serviceAccountName is isolated by the default and served even
// with --require-service-account; its HelmReleases impersonate the default
// service account and read their source from their own namespace; a direct
// edit of the HelmRelease that escapes either is undone; a definition's own
// service account wins over the default.
func TestMultiTenantProfile(t *testing.T) {
	startOperatorWith(t, operator.Options{
		RequireServiceAccount: true,
		Policy:                tenancy.Policy{DefaultServiceAccount: "chartkind-release", NoCrossNamespaceRefs: true},
	})
	def := createDefinition(t, widgetDefinition("mtwidget", "MtWidget"))
	c := meta.FindStatusCondition(def.Status.Conditions, "ReleasesIsolated")
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "DefaultServiceAccount" || !strings.Contains(c.Message, "chartkind-release") {
		t.Fatalf("ReleasesIsolated with the default service account: %+v", c)
	}
	ns := newNamespace(t)
	createObject(t, def, ns, "w1", map[string]any{"replicas": int64(1)})
	isolated := func(hr *helmv2.HelmRelease) error {
		if hr.Spec.ServiceAccountName != "chartkind-release" {
			return fmt.Errorf("serviceAccountName %q", hr.Spec.ServiceAccountName)
		}
		if hr.Spec.Chart == nil || hr.Spec.Chart.Spec.SourceRef.Namespace != "" || hr.Spec.Chart.Spec.SourceRef.Name != "charts" {
			return fmt.Errorf("chart %+v: the source must be referenced in the release's own namespace", hr.Spec.Chart)
		}
		return nil
	}
	hr := waitRelease(t, ns, "mtwidget-w1", isolated)

	// A direct edit back to helm-controller's identity and to the shared
	// source is undone.
	hr.Spec.ServiceAccountName = ""
	hr.Spec.Chart.Spec.SourceRef.Namespace = "flux-system"
	if err := env.Client.Update(ctxT(t), hr); err != nil {
		t.Fatal(err)
	}
	waitRelease(t, ns, "mtwidget-w1", isolated)

	own := widgetDefinition("mtownwidget", "MtOwnWidget")
	own.Spec.Release.ServiceAccountName = "widget-deployer"
	own = createDefinition(t, own)
	if c := meta.FindStatusCondition(own.Status.Conditions, "ReleasesIsolated"); c == nil || c.Status != metav1.ConditionTrue || c.Reason != "ServiceAccount" {
		t.Fatalf("ReleasesIsolated with the definition's service account: %+v", c)
	}
	createObject(t, own, ns, "w2", nil)
	waitRelease(t, ns, "mtownwidget-w2", func(hr *helmv2.HelmRelease) error {
		if hr.Spec.ServiceAccountName != "widget-deployer" {
			return fmt.Errorf("serviceAccountName %q, want the definition's", hr.Spec.ServiceAccountName)
		}
		return nil
	})
}

// TestInvalidReleaseCEL: a health-check expression helm-controller could not
// parse makes the definition Ready=False, InvalidRelease, naming the field,
// instead of reaching every HelmRelease of the kind (where helm-controller
// would stall each with InvalidCELExpression); fixing it serves the kind.
func TestInvalidReleaseCEL(t *testing.T) {
	startOperator(t)
	def := widgetDefinition("celwidget", "CelWidget")
	def.Spec.Release.HealthCheckExprs = []kustomize.CustomHealthCheck{{
		APIVersion: "v1", Kind: "ConfigMap",
		HealthCheckExpressions: kustomize.HealthCheckExpressions{Current: "has(self.data.ready"},
	}}
	if err := env.Client.Create(ctxT(t), def); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, def.Name) })
	got := waitDefinitionReason(t, def.Name, "InvalidRelease")
	if c := meta.FindStatusCondition(got.Status.Conditions, "Ready"); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "spec.release.healthCheckExprs[0].current") {
		t.Fatalf("Ready: %+v", c)
	}
	if got.Status.SchemaDigest != "" {
		t.Fatalf("served with an invalid release setting: %+v", got.Status)
	}
	got.Spec.Release.HealthCheckExprs[0].Current = "has(self.data.ready)"
	if err := env.Client.Update(ctxT(t), got); err != nil {
		t.Fatal(err)
	}
	waitDefinitionReason(t, def.Name, "Serving")
}
