package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/testenv"
)

// A restarted operator, and a definition reconciled again with nothing
// changed, send no write request at all: not even a server-side apply of
// the CRD that would change nothing (it is a PATCH the API server serves,
// one per kind). A CRD edited by hand (running or stopped operator),
// deleted, or whose definition changed is applied as before.
func TestRestartWritesNoCRD(t *testing.T) {
	op, requests := startRecordingOperator(t)
	ns := newNamespace(t)
	// The chart comes from --charts-dir: the suite has no Flux source, and
	// every reconcile of a definition naming one would try (and fail, with a
	// 404) to create its HelmChart in the missing flux-system namespace.
	def := widgetDefinition("restartwidget", "RestartWidget")
	def.Spec.Release.Chart.Name, def.Spec.Release.Chart.Version = "redis", ">=0.1.0"
	def = createDefinition(t, def)
	const n = 4
	for i := range n {
		createObject(t, def, ns, fmt.Sprintf("r%d", i), map[string]any{"replicas": int64(i + 1)})
	}
	for i := range n {
		waitObject(t, def, ns, fmt.Sprintf("r%d", i), func(u *unstructured.Unstructured) error {
			if d, _, _ := unstructured.NestedString(u.Object, "status", "valuesDigest"); d == "" {
				return fmt.Errorf("not in step yet")
			}
			return nil
		})
	}
	waitCounts(t, def.Name, n, 0)
	crdName := "restartwidgets.apps.chartkind.io"
	crd := getCRD(t, crdName)
	cols := len(crd.Spec.Versions[0].AdditionalPrinterColumns)
	if cols == 0 {
		t.Fatalf("CRD %s has no printer columns to edit", crdName)
	}
	d := waitAppliedCRD(t, def.Name, crd)
	if d.Status.AppliedCRD.Digest == "" || d.Status.AppliedCRD.Digest != crd.Annotations["chartkind.io/applied-hash"] {
		t.Errorf("status.appliedCRD.digest %q, CRD annotation %q", d.Status.AppliedCRD.Digest, crd.Annotations["chartkind.io/applied-hash"])
	}

	// 1. A restart with nothing to do writes nothing.
	restartWritesNothing(t, op, requests, def, n, "a restart with nothing changed")
	if c := getCRD(t, crdName); c.ResourceVersion != crd.ResourceVersion {
		t.Errorf("CRD resourceVersion %s → %s across the restart", crd.ResourceVersion, c.ResourceVersion)
	}

	// 2. Nor does a definition reconciled again for an event that changes
	// nothing it reads (here an annotation, which the controller watches).
	requests.take()
	before := reconcileCount(t, "applicationdefinition")
	testenv.WaitFor(t, timeout, "annotating the definition", func(ctx context.Context) error {
		d := &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(def), d); err != nil {
			return err
		}
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations["example.com/touched"] = "yes"
		return env.Client.Update(ctx, d)
	})
	waitReconciles(t, "applicationdefinition", before+1)
	time.Sleep(time.Second)
	if w := requests.take(); len(w) != 0 {
		t.Errorf("a definition reconciled with nothing changed wrote %d times:\n  %s", len(w), strings.Join(w, "\n  "))
	}

	// 3. A hand edit of the CRD's spec while the operator runs is put back.
	editCRD(t, crdName)
	crd = waitCRDRestored(t, crdName, cols)
	waitAppliedCRD(t, def.Name, crd)
	if !wrote(requests.take(), "PATCH /apis/apiextensions.k8s.io/v1/customresourcedefinitions/"+crdName) {
		t.Errorf("the CRD was restored without chartkind's apply")
	}

	// 4. So is one made while the operator is stopped, once it starts again.
	op.stop()
	editCRD(t, crdName)
	op.restart()
	crd = waitCRDRestored(t, crdName, cols)
	waitAppliedCRD(t, def.Name, crd)
	waitDefinitionReason(t, def.Name, "Serving")

	// 5. A changed definition has its new CRD applied.
	digest := getDefinition(t, def.Name).Status.AppliedCRD.Digest
	testenv.WaitFor(t, timeout, "updating the definition", func(ctx context.Context) error {
		d := &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(def), d); err != nil {
			return err
		}
		d.Spec.Schema = &apiextensionsv1.JSON{Raw: []byte(strings.Replace(widgetSchema, `"extra": {"type": "string"},`, `"extra": {"type": "string"}, "color": {"type": "string"},`, 1))}
		return env.Client.Update(ctx, d)
	})
	testenv.WaitFor(t, timeout, "the new CRD applied", func(ctx context.Context) error {
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, c); err != nil {
			return err
		}
		if _, ok := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["color"]; !ok {
			return fmt.Errorf("no spec.color in the CRD yet")
		}
		crd = c
		return nil
	})
	if d := waitAppliedCRD(t, def.Name, crd); d.Status.AppliedCRD.Digest == digest {
		t.Errorf("status.appliedCRD.digest unchanged (%s) after the definition changed", digest)
	}
	waitDefinitionReason(t, def.Name, "Serving")

	// ... and what was recorded then lets the next restart write nothing.
	restartWritesNothing(t, op, requests, def, n, "a restart after the CRD was applied again")

	// 6. A CRD deleted while the operator is stopped is created again (its
	// objects went with it).
	op.stop()
	old := getCRD(t, crdName)
	if err := env.Client.Delete(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	env.WaitForDeleted(t, old, timeout)
	op.restart()
	testenv.WaitFor(t, timeout, "the CRD created again", func(ctx context.Context) error {
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, c); err != nil {
			return err
		}
		if c.UID == old.UID {
			return fmt.Errorf("still the deleted CRD")
		}
		crd = c
		return nil
	})
	waitAppliedCRD(t, def.Name, crd)
	waitDefinitionReason(t, def.Name, "Serving")
}

// restartWritesNothing restarts op, waits until the new operator reconciled
// the definitions and the n objects of def's kind (its start sync), and a
// little more for the counts controller (it counts every 2 s) and late
// events, and fails the test for any write request it made.
func restartWritesNothing(t *testing.T, op *runningOperator, requests *requestLog, def *v1alpha1.ApplicationDefinition, n int, what string) {
	t.Helper()
	defs := reconcileCount(t, "applicationdefinition")
	objs := objectReconciles(t, def.Spec.Application.Kind)
	op.stop()
	requests.take() // the writes of the operator stopped
	op.restart()
	waitReconciles(t, "applicationdefinition", defs+1)
	testenv.WaitFor(t, timeout, "the restarted operator reconciling every object", func(context.Context) error {
		if got := objectReconciles(t, def.Spec.Application.Kind); got < objs+float64(n) {
			return fmt.Errorf("%v of %d objects reconciled", got-objs, n)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	if w := requests.take(); len(w) != 0 {
		t.Errorf("%s: the operator wrote %d times:\n  %s", what, len(w), strings.Join(w, "\n  "))
	}
}

// reconcileCount is controller-runtime's count of the controller's
// reconciles, whatever their result, since the test binary started.
func reconcileCount(t *testing.T, controller string) float64 {
	t.Helper()
	var sum float64
	for _, m := range gather(t)["controller_runtime_reconcile_total"].GetMetric() {
		if labelOf(m, "controller") == controller {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func waitReconciles(t *testing.T, controller string, atLeast float64) {
	t.Helper()
	testenv.WaitFor(t, timeout, controller+" reconciled", func(context.Context) error {
		if got := reconcileCount(t, controller); got < atLeast {
			return fmt.Errorf("%v reconciles, want %v", got, atLeast)
		}
		return nil
	})
}

// objectReconciles counts the engine's reconciles of kind's objects.
func objectReconciles(t *testing.T, kind string) float64 {
	t.Helper()
	var sum float64
	for _, m := range gather(t)["chartkind_reconciles_total"].GetMetric() {
		if labelOf(m, "kind") == kind {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func getCRD(t *testing.T, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	c := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: name}, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func getDefinition(t *testing.T, name string) *v1alpha1.ApplicationDefinition {
	t.Helper()
	d := &v1alpha1.ApplicationDefinition{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: name}, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// waitAppliedCRD waits until the definition's status.appliedCRD records c
// (its UID and generation).
func waitAppliedCRD(t *testing.T, name string, c *apiextensionsv1.CustomResourceDefinition) *v1alpha1.ApplicationDefinition {
	t.Helper()
	var d *v1alpha1.ApplicationDefinition
	testenv.WaitFor(t, timeout, "status.appliedCRD of "+name, func(ctx context.Context) error {
		d = &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, d); err != nil {
			return err
		}
		if a := d.Status.AppliedCRD; a == nil || a.UID != c.UID || a.Generation != c.Generation {
			return fmt.Errorf("status.appliedCRD %+v, CRD uid %s generation %d", a, c.UID, c.Generation)
		}
		return nil
	})
	return d
}

// editCRD edits the CRD as someone with kubectl edit would: drops the
// spec.extra property and the last printer column.
func editCRD(t *testing.T, name string) {
	t.Helper()
	testenv.WaitFor(t, timeout, "editing CRD "+name, func(ctx context.Context) error {
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, c); err != nil {
			return err
		}
		v := &c.Spec.Versions[0]
		delete(v.Schema.OpenAPIV3Schema.Properties["spec"].Properties, "extra")
		v.AdditionalPrinterColumns = v.AdditionalPrinterColumns[:len(v.AdditionalPrinterColumns)-1]
		err := env.Client.Update(ctx, c)
		if apierrors.IsConflict(err) {
			return err
		}
		if err != nil {
			t.Fatalf("editing CRD %s: %v", name, err)
		}
		return nil
	})
}

// waitCRDRestored waits until the CRD has spec.extra and the cols printer
// columns chartkind applied (editCRD took one).
func waitCRDRestored(t *testing.T, name string, cols int) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	var c *apiextensionsv1.CustomResourceDefinition
	testenv.WaitFor(t, timeout, "CRD "+name+" restored", func(ctx context.Context) error {
		c = &apiextensionsv1.CustomResourceDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, c); err != nil {
			return err
		}
		v := c.Spec.Versions[0]
		if _, ok := v.Schema.OpenAPIV3Schema.Properties["spec"].Properties["extra"]; !ok {
			return fmt.Errorf("spec.extra still missing")
		}
		if len(v.AdditionalPrinterColumns) != cols {
			return fmt.Errorf("%d printer columns, want %d", len(v.AdditionalPrinterColumns), cols)
		}
		return nil
	})
	return c
}

func wrote(writes []string, prefix string) bool {
	for _, w := range writes {
		if strings.HasPrefix(w, prefix) {
			return true
		}
	}
	return false
}
