package integration

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/testenv"
)

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(env.KubectlPath, append([]string{"--kubeconfig", env.KubeconfigPath}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// A definition pointing at a chart in --charts-dir gets its CRD generated,
// applied and Established, and the kind is served: kubectl lists it with
// chartkind's printer columns.
func TestDefinitionServesChartKind(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "postgres"},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{
				Kind: "Postgres", ShortNames: []string{"pg"}, Categories: []string{"databases"},
				PrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{{Name: "Replicas", Type: "integer", JSONPath: ".spec.replicas"}},
			},
			Release: v1alpha1.ReleaseSpec{
				Chart: &v1alpha1.ChartTemplate{Name: "postgres", Version: ">=0.1.0",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "examples", Namespace: "flux-system"}},
			},
		},
	}
	def = createDefinition(t, def)

	if def.Status.CRDName != "postgreses.apps.chartkind.io" || def.Status.ChartVersion != "0.1.0" ||
		!strings.HasPrefix(def.Status.SchemaDigest, "sha256:") || def.Status.ObservedGeneration != def.Generation {
		t.Errorf("status: crdName %q chartVersion %q schemaDigest %q observedGeneration %d", def.Status.CRDName, def.Status.ChartVersion, def.Status.SchemaDigest, def.Status.ObservedGeneration)
	}
	// The example chart's parameters map accepts integers, strings and
	// booleans: a union a CRD cannot express, which the condition reports.
	if c := meta.FindStatusCondition(def.Status.Conditions, "Ready"); c == nil ||
		!strings.Contains(c.Message, "checked only by Helm") || !strings.Contains(c.Message, "#/properties/parameters/additionalProperties") {
		t.Errorf("Ready message does not report what the CRD cannot check: %v", c)
	}
	if n := def.Status.Names; n == nil || n.Kind != "Postgres" || n.Plural != "postgreses" || n.Prefix != "postgres-" || n.Group != "apps.chartkind.io" {
		t.Errorf("status.names: %+v", n)
	}
	if !sliceHas(def.Finalizers, "chartkind.io/finalizer") {
		t.Errorf("finalizer missing: %v", def.Finalizers)
	}

	c := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: "postgreses.apps.chartkind.io"}, c); err != nil {
		t.Fatal(err)
	}
	if c.Labels[crd.ManagedByLabel] != "chartkind" || c.Labels[crd.DefinitionLabel] != "postgres" {
		t.Errorf("CRD labels: %v", c.Labels)
	}
	established := false
	for _, cond := range c.Status.Conditions {
		if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
			established = true
		}
	}
	if !established {
		t.Errorf("CRD not Established: %+v", c.Status.Conditions)
	}
	managers := map[string]bool{}
	for _, mf := range c.ManagedFields {
		managers[mf.Manager+"/"+string(mf.Operation)] = true
	}
	if !managers["chartkind/Apply"] {
		t.Errorf("CRD not server-side applied by chartkind: %v", managers)
	}

	// A CRD edited by someone else is put back.
	testenv.WaitFor(t, timeout, "editing the CRD", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
			return err
		}
		c.Spec.Versions[0].AdditionalPrinterColumns = c.Spec.Versions[0].AdditionalPrinterColumns[:1]
		c.Spec.Names.ShortNames = []string{"pgx"}
		return env.Client.Update(ctx, c)
	})
	testenv.WaitFor(t, timeout, "the CRD restored", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
			return err
		}
		if len(c.Spec.Versions[0].AdditionalPrinterColumns) < 4 || strings.Join(c.Spec.Names.ShortNames, ",") != "pg" {
			return fmt.Errorf("columns %d, short names %v", len(c.Spec.Versions[0].AdditionalPrinterColumns), c.Spec.Names.ShortNames)
		}
		return nil
	})
	waitDefinitionReason(t, def.Name, "Serving")

	createObject(t, def, ns, "orders", map[string]any{"replicas": int64(3), "version": "16"})
	out := kubectl(t, "get", "postgreses", "-n", ns)
	header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	if strings.Join(header, " ") != "NAME READY AGE VERSION REPLICAS" {
		t.Errorf("kubectl get columns: %q", header)
	}
	if !strings.Contains(out, "orders") {
		t.Errorf("kubectl get does not list the object:\n%s", out)
	}
	if out := kubectl(t, "get", "pg", "-n", ns, "-o", "name"); !strings.Contains(out, "postgres.apps.chartkind.io/orders") {
		t.Errorf("short name pg: %q", out)
	}
	if out := kubectl(t, "get", "apps", "-n", ns, "-o", "name"); !strings.Contains(out, "orders") {
		t.Errorf("category apps: %q", out)
	}
	waitRelease(t, ns, "postgres-orders", nil)

	// An event records the transition to Serving.
	testenv.WaitFor(t, timeout, "Serving event on the definition", func(ctx context.Context) error {
		evs, err := events(ctx, "default", def.UID)
		if err != nil {
			return err
		}
		if len(evs["Serving"]) == 0 {
			return fmt.Errorf("no Serving event: %v", evs)
		}
		return nil
	})
}

// A definition whose inline schema is not a valid schema is refused with
// SchemaInvalid; one naming a chart whose Flux source is not there with
// SourceNotFound.
func TestDefinitionFailures(t *testing.T) {
	startOperator(t)
	bad := widgetDefinition("badschema", "BadSchema")
	bad.Spec.Schema = &apiextensionsv1.JSON{Raw: []byte(`{"type": "object", "properties": {"a": {"type": "nonsense"}}}`)}
	if err := env.Client.Create(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, bad.Name) })
	waitDefinitionReason(t, bad.Name, "SchemaInvalid")

	missing := widgetDefinition("nochart", "NoChart")
	missing.Spec.Schema = nil
	missing.Spec.Release.Chart.Name = "does-not-exist"
	if err := env.Client.Create(context.Background(), missing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, missing.Name) })
	def := waitDefinitionReason(t, missing.Name, "SourceNotFound")
	if c := meta.FindStatusCondition(def.Status.Conditions, "Ready"); !strings.Contains(c.Message, "HelmRepository flux-system/charts") {
		t.Errorf("Ready message %q does not name the missing source", c.Message)
	}
	if c := meta.FindStatusCondition(def.Status.Conditions, "Ready"); c.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %s, want False", c.Status)
	}
	for _, name := range []string{"badschemas.apps.chartkind.io", "nocharts.apps.chartkind.io"} {
		err := env.Client.Get(context.Background(), types.NamespacedName{Name: name}, &apiextensionsv1.CustomResourceDefinition{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("CRD %s: got %v, want none", name, err)
		}
	}
}

// Two definitions claiming the same CRD: the later one is refused with
// CRDConflict and the first is left untouched.
func TestConflictingDefinitionRefused(t *testing.T) {
	startOperator(t)
	first := createDefinition(t, widgetDefinition("gadget", "Gadget"))
	crdBefore := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: first.Status.CRDName}, crdBefore); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // creationTimestamp has second precision

	second := widgetDefinition("gadget-copy", "Gadget")
	second.Spec.Schema = &apiextensionsv1.JSON{Raw: []byte(`{"type":"object","properties":{"other":{"type":"string"}}}`)}
	if err := env.Client.Create(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, second.Name) })
	got := waitDefinitionReason(t, second.Name, "CRDConflict")
	if c := meta.FindStatusCondition(got.Status.Conditions, "Ready"); !strings.Contains(c.Message, "gadget") {
		t.Errorf("message does not name the first definition: %q", c.Message)
	}

	// Same group and kind under another plural conflicts too.
	third := widgetDefinition("gadget-plural", "Gadget")
	third.Spec.Application.Plural = "gadgetz"
	if err := env.Client.Create(context.Background(), third); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, third.Name) })
	waitDefinitionReason(t, third.Name, "CRDConflict")

	time.Sleep(short)
	crdAfter := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: first.Status.CRDName}, crdAfter); err != nil {
		t.Fatal(err)
	}
	if crdAfter.ResourceVersion != crdBefore.ResourceVersion || crdAfter.Labels[crd.DefinitionLabel] != "gadget" {
		t.Errorf("first definition's CRD was touched: rv %s → %s, labels %v", crdBefore.ResourceVersion, crdAfter.ResourceVersion, crdAfter.Labels)
	}
	waitDefinitionReason(t, first.Name, "Serving")
	err := env.Client.Get(context.Background(), types.NamespacedName{Name: "gadgetz.apps.chartkind.io"}, &apiextensionsv1.CustomResourceDefinition{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("CRD of the refused definition: %v, want none", err)
	}
}

// A CRD that exists without chartkind's labels for the definition is never
// taken over.
func TestForeignCRDNotTakenOver(t *testing.T) {
	startOperator(t)
	foreign := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "sprockets.apps.chartkind.io", Labels: map[string]string{"owner": "someone-else"}},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "apps.chartkind.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: "Sprocket", ListKind: "SprocketList", Plural: "sprockets", Singular: "sprocket"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true)}},
			}},
		},
	}
	if err := env.Client.Create(context.Background(), foreign); err != nil {
		t.Fatal(err)
	}
	// Let the API server finish its own status writes (NamesAccepted, Established).
	testenv.WaitFor(t, timeout, "foreign CRD established", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(foreign), foreign); err != nil {
			return err
		}
		for _, c := range foreign.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not established")
	})
	time.Sleep(time.Second)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(foreign), foreign); err != nil {
		t.Fatal(err)
	}
	before := foreign.ResourceVersion

	def := widgetDefinition("sprocket", "Sprocket")
	if err := env.Client.Create(context.Background(), def); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, def.Name) })
	got := waitDefinitionReason(t, def.Name, "CRDConflict")
	if c := meta.FindStatusCondition(got.Status.Conditions, "Ready"); !strings.Contains(c.Message, "not managed by chartkind") {
		t.Errorf("message: %q", c.Message)
	}
	time.Sleep(short)
	after := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(foreign), after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before || after.Labels[crd.ManagedByLabel] != "" {
		t.Errorf("foreign CRD modified: rv %s → %s, labels %v", before, after.ResourceVersion, after.Labels)
	}
	for _, mf := range after.ManagedFields {
		if mf.Manager == "chartkind" {
			t.Errorf("chartkind manages fields of the foreign CRD: %+v", mf)
		}
	}
}

func sliceHas(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Changing a definition re-applies its CRD and restarts the kind's watch:
// the new schema is served and every existing HelmRelease gets the new
// release settings.
func TestDefinitionChangeUpdatesKind(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("changewidget", "ChangeWidget"))
	for _, name := range []string{"one", "two"} {
		createObject(t, def, ns, name, map[string]any{"replicas": int64(1)})
		waitRelease(t, ns, "changewidget-"+name, nil)
	}
	digest := def.Status.SchemaDigest

	testenv.WaitFor(t, timeout, "updating the definition", func(ctx context.Context) error {
		d := &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(def), d); err != nil {
			return err
		}
		d.Spec.Schema = &apiextensionsv1.JSON{Raw: []byte(strings.Replace(widgetSchema, `"extra": {"type": "string"},`, `"extra": {"type": "string"}, "color": {"type": "string"},`, 1))}
		d.Spec.Release.Interval = metav1.Duration{Duration: 7 * time.Minute}
		d.Spec.Release.Labels = map[string]string{"team": "platform", "tier": "gold"}
		return env.Client.Update(ctx, d)
	})
	testenv.WaitFor(t, timeout, "new schema digest", func(ctx context.Context) error {
		d := waitDefinitionReason(t, def.Name, "Serving")
		if d.Status.SchemaDigest == digest {
			return fmt.Errorf("schema digest unchanged")
		}
		return nil
	})
	c := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: "changewidgets.apps.chartkind.io"}, c); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["color"]; !ok {
		t.Errorf("CRD schema not updated: %v", c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties)
	}
	for _, name := range []string{"one", "two"} {
		waitRelease(t, ns, "changewidget-"+name, func(hr *helmv2.HelmRelease) error {
			if hr.Spec.Interval.Duration != 7*time.Minute || hr.Labels["tier"] != "gold" {
				return fmt.Errorf("interval %s labels %v", hr.Spec.Interval.Duration, hr.Labels)
			}
			return nil
		})
	}
	createObject(t, def, ns, "three", map[string]any{"color": "blue"})
	waitRelease(t, ns, "changewidget-three", func(hr *helmv2.HelmRelease) error {
		if canon(values(hr)) != `{"color":"blue"}` {
			return fmt.Errorf("values %s", canon(values(hr)))
		}
		return nil
	})
}
