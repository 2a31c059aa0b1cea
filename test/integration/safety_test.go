package integration

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"context"
	"fmt"
	"github.com/chartkind/chartkind/internal/testenv"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/mirror"
)

// TestAdoptedReleaseKeepsItsOwnSettings: restoring the definition's release
// settings touches only what the definition sets. An adopted HelmRelease keeps
// its own valuesFrom, target namespace and release name, also after the
// definition changes one of its own settings.
func TestAdoptedReleaseKeepsItsOwnSettings(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("keepwidget", "KeepWidget"))

	hr := widgetRelease(ns, "keepwidget-legacy", `{"replicas": 2}`)
	hr.Spec.ReleaseName = "legacy-db"
	hr.Spec.TargetNamespace = "databases"
	hr.Spec.ValuesFrom = []helmv2.ValuesReference{{Kind: "Secret", Name: "legacy-passwords"}}
	if err := env.Client.Create(context.Background(), hr); err != nil {
		t.Fatal(err)
	}
	waitObject(t, def, ns, "legacy", func(u *unstructured.Unstructured) error { return nil })
	keeps := func(hr *helmv2.HelmRelease) error {
		if metav1.GetControllerOf(hr) == nil {
			return fmt.Errorf("not linked yet")
		}
		if hr.Spec.ReleaseName != "legacy-db" || hr.Spec.TargetNamespace != "databases" ||
			len(hr.Spec.ValuesFrom) != 1 || hr.Spec.ValuesFrom[0].Name != "legacy-passwords" {
			return fmt.Errorf("own settings lost: releaseName %q targetNamespace %q valuesFrom %v", hr.Spec.ReleaseName, hr.Spec.TargetNamespace, hr.Spec.ValuesFrom)
		}
		return nil
	}
	waitRelease(t, ns, "keepwidget-legacy", func(hr *helmv2.HelmRelease) error {
		if err := keeps(hr); err != nil {
			return err
		}
		if hr.Spec.Interval.Duration != 5*time.Minute {
			return fmt.Errorf("definition's interval not restored: %s", hr.Spec.Interval.Duration)
		}
		return nil
	})

	// The administrator changes the definition's interval: it reaches the
	// HelmRelease, and the HelmRelease's own settings stay.
	cur := &v1alpha1.ApplicationDefinition{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: def.Name}, cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Release.Interval = metav1.Duration{Duration: 7 * time.Minute}
	if err := env.Client.Update(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	waitRelease(t, ns, "keepwidget-legacy", func(hr *helmv2.HelmRelease) error {
		if hr.Spec.Interval.Duration != 7*time.Minute {
			return fmt.Errorf("interval %s", hr.Spec.Interval.Duration)
		}
		return keeps(hr)
	})
}

// TestLongestPrefixClaimsRelease: two definitions of one chart with prefixes
// "ha-" and "ha-pg-": an unlinked HelmRelease "ha-pg-x" belongs to the second
// only, and the first never makes an object for it.
func TestLongestPrefixClaimsRelease(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	shortDef := widgetDefinition("prefixshort", "PrefixShort")
	shortDef.Spec.Release.Prefix = "ha-"
	longDef := widgetDefinition("prefixlong", "PrefixLong")
	longDef.Spec.Release.Prefix = "ha-pg-"
	// The HelmRelease exists before either kind is served, so each
	// definition's start-up resync sees it.
	hr := widgetRelease(ns, "ha-pg-x", `{"replicas": 3}`)
	if err := env.Client.Create(context.Background(), hr); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*v1alpha1.ApplicationDefinition{shortDef, longDef} {
		if err := env.Client.Create(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		name := d.Name
		t.Cleanup(func() { deleteDefinition(t, name) })
	}
	shortDef = waitDefinitionReason(t, shortDef.Name, "Serving")
	longDef = waitDefinitionReason(t, longDef.Name, "Serving")
	waitObject(t, longDef, ns, "x", func(u *unstructured.Unstructured) error { return nil })
	waitRelease(t, ns, "ha-pg-x", func(hr *helmv2.HelmRelease) error {
		if hr.Labels[mirror.LabelDefinition] != "prefixlong" {
			return fmt.Errorf("labels %v", hr.Labels)
		}
		return nil
	})
	// The shorter prefix's kind never gets an object "pg-x".
	time.Sleep(short)
	if _, err := getObject(context.Background(), shortDef, ns, "pg-x"); err == nil {
		t.Fatal("definition with the shorter prefix also adopted the HelmRelease")
	}
}

// TestDefinitionNamesAndPrefixImmutable: the API server refuses to rename a
// kind or change a prefix in place, with a message naming the field.
func TestDefinitionNamesAndPrefixImmutable(t *testing.T) {
	startOperator(t)
	def := createDefinition(t, widgetDefinition("fixedwidget", "FixedWidget"))
	for field, mutate := range map[string]func(d *v1alpha1.ApplicationDefinition){
		"spec.application.kind":   func(d *v1alpha1.ApplicationDefinition) { d.Spec.Application.Kind = "OtherWidget" },
		"spec.application.plural": func(d *v1alpha1.ApplicationDefinition) { d.Spec.Application.Plural = "fixedwidgetz" },
		"spec.release.prefix":     func(d *v1alpha1.ApplicationDefinition) { d.Spec.Release.Prefix = "fw-" },
	} {
		cur := &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Name: def.Name}, cur); err != nil {
			t.Fatal(err)
		}
		mutate(cur)
		err := env.Client.Update(context.Background(), cur)
		if err == nil || !strings.Contains(err.Error(), field+" is immutable") {
			t.Errorf("changing %s: got %v, want it refused as immutable", field, err)
		}
	}
}

// TestFailureShownOnObject: when the HelmRelease cannot be written (here an
// admission policy refuses it, as a policy engine or quota would), the object
// says so in its Ready condition and a Warning event, instead of sitting with
// an empty status.
func TestFailureShownOnObject(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	ctx := context.Background()
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "freeze-" + ns},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptrTo(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"helm.toolkit.fluxcd.io"}, APIVersions: []string{"*"}, Resources: []string{"helmreleases"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "HelmReleases are frozen in this namespace"}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "freeze-" + ns},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
	def := createDefinition(t, widgetDefinition("frozenwidget", "FrozenWidget"))
	// The policy takes effect once the API server has loaded it: keep creating
	// objects until one is refused, as a user would see it.
	var obj *unstructured.Unstructured
	testenv.WaitFor(t, timeout, "an object whose HelmRelease is refused", func(ctx context.Context) error {
		name := fmt.Sprintf("w%d", time.Now().UnixNano()%1e6)
		obj = createObject(t, def, ns, name, map[string]any{"replicas": int64(1)})
		err := testenv.Poll(ctx, 5*time.Second, func(ctx context.Context) error {
			u, err := getObject(ctx, def, ns, name)
			if err != nil {
				return err
			}
			if c := condition(u, "Ready"); c == nil || c["reason"] != mirror.ReasonReconcileFailed {
				return fmt.Errorf("Ready %v", c)
			}
			obj = u
			return nil
		})
		return err
	})
	c := condition(obj, "Ready")
	if c["status"] != "False" || !strings.Contains(fmt.Sprint(c["message"]), "HelmReleases are frozen in this namespace") {
		t.Fatalf("Ready condition does not say why: %v", c)
	}
	waitEvent(t, ns, obj.GetUID(), mirror.ReasonReconcileFailed, "Warning")
}

func ptrTo[T any](v T) *T { return &v }
