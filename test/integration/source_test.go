package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	fluxmeta "github.com/fluxcd/pkg/apis/meta"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/testenv"
)

// gadgetChart writes a chart directory named gadget with the given schema
// and values.yaml, for publishing into a test repository.
func gadgetChart(t *testing.T, schema, values string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gadget")
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Chart.yaml":         "apiVersion: v2\nname: gadget\nversion: 0.1.0\n",
		"values.yaml":        values,
		"values.schema.json": schema,
		"templates/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata: {}\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// artifactServer plays source-controller for a definition's HelmChart: it
// publishes a chart version into a repository served on 127.0.0.1 and writes
// the HelmChart's status with the artifact's URL and digest, as
// source-controller would.
type artifactServer struct {
	t    *testing.T
	repo *testenv.ChartRepo
	ns   string
	name string
}

func (a *artifactServer) publish(chartDir, version string) (url, digest string) {
	a.t.Helper()
	name, v := a.repo.Publish(a.t, chartDir, version)
	file := fmt.Sprintf("%s-%s.tgz", name, v)
	data, err := os.ReadFile(filepath.Join(a.repo.Dir, file))
	if err != nil {
		a.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return a.repo.URL + "/" + file, "sha256:" + hex.EncodeToString(sum[:])
}

// advertise writes the HelmChart status naming the artifact at url.
func (a *artifactServer) advertise(version, url, digest string) {
	a.t.Helper()
	testenv.WaitFor(a.t, timeout, "writing HelmChart status", func(ctx context.Context) error {
		hc := &sourcev1.HelmChart{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: a.ns, Name: a.name}, hc); err != nil {
			return err
		}
		hc.Status.ObservedGeneration = hc.Generation
		hc.Status.Artifact = &fluxmeta.Artifact{
			Path: "helmchart/" + a.ns + "/" + a.name + "/gadget-" + version + ".tgz", URL: url,
			Revision: version, Digest: digest, LastUpdateTime: metav1.Now(),
		}
		meta.SetStatusCondition(&hc.Status.Conditions, metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "ChartPullSucceeded", Message: "pulled 'gadget' chart with version '" + version + "'"})
		return env.Client.Status().Update(ctx, hc)
	})
}

func (a *artifactServer) release(chartDir, version string) {
	a.t.Helper()
	url, digest := a.publish(chartDir, version)
	a.advertise(version, url, digest)
}

func gadgetDefinition(name, kind, sourceNS string) *v1alpha1.ApplicationDefinition {
	def := widgetDefinition(name, kind)
	def.Spec.Schema = nil
	def.Spec.Release.Chart = &v1alpha1.ChartTemplate{Name: "gadget", Version: "0.x",
		SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "gadgets", Namespace: sourceNS}}
	return def
}

// crdHasProperty reports whether the CRD's spec schema has the property, with the type.
func crdSpecProperty(t *testing.T, name, prop string) (string, bool) {
	t.Helper()
	c := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: name}, c); err != nil {
		t.Fatal(err)
	}
	p, ok := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties[prop]
	return p.Type, ok
}

const gadgetV1 = `{"type": "object", "properties": {
  "size": {"type": "string", "enum": ["small", "large"]},
  "replicas": {"type": "integer"}}}`

const gadgetV2 = `{"type": "object", "properties": {
  "size": {"type": "string", "enum": ["small", "large"]},
  "replicas": {"type": "integer"},
  "color": {"type": "string"}}}`

// gadgetV3 drops "large" from the enum and makes replicas a string: objects
// using either would become invalid.
const gadgetV3 = `{"type": "object", "properties": {
  "size": {"type": "string", "enum": ["small"]},
  "replicas": {"type": "string"},
  "color": {"type": "string"}}}`

// A definition pointing at a Flux source: chartkind creates the HelmChart,
// waits for its artifact, reads the schema from it and serves the kind; a new
// chart version adds a field to the CRD; an incompatible one is refused with
// the objects and fields named, until the administrator accepts that schema;
// a digest mismatch is refused and never touches the served CRD.
func TestChartFromFluxSource(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	srcNS := newNamespace(t)
	ns := newNamespace(t)
	repo := &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Namespace: srcNS, Name: "gadgets"},
		Spec: sourcev1.HelmRepositorySpec{URL: "http://127.0.0.1:1/unused", Interval: metav1.Duration{Duration: time.Hour}}}
	if err := env.Client.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	def := gadgetDefinition("fluxgadgets", "FluxGadget", srcNS)
	if err := env.Client.Create(ctx, def); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, def.Name) })

	// The HelmChart appears, labelled and owned; without an artifact the
	// definition waits.
	art := &artifactServer{t: t, repo: testenv.ServeChartRepo(t, ""), ns: srcNS, name: "chartkind-fluxgadgets"}
	testenv.WaitFor(t, timeout, "HelmChart", func(ctx context.Context) error {
		hc := &sourcev1.HelmChart{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: srcNS, Name: art.name}, hc); err != nil {
			return err
		}
		if hc.Spec.Chart != "gadget" || hc.Spec.Version != "0.x" || hc.Spec.SourceRef.Name != "gadgets" || hc.Labels["chartkind.io/definition"] != "fluxgadgets" {
			return fmt.Errorf("HelmChart %+v labels %v", hc.Spec, hc.Labels)
		}
		return nil
	})
	waitDefinitionReason(t, def.Name, "ArtifactNotReady")

	v1 := gadgetChart(t, gadgetV1, "size: small\nreplicas: 1\n")
	art.release(v1, "0.1.0")
	d := waitDefinitionReason(t, def.Name, "Serving")
	if d.Status.ChartVersion != "0.1.0" || !strings.HasPrefix(d.Status.ArtifactDigest, "sha256:") || d.Status.SchemaDigest == "" {
		t.Errorf("status chart %q artifact %q schema %q", d.Status.ChartVersion, d.Status.ArtifactDigest, d.Status.SchemaDigest)
	}
	crdName := d.Status.CRDName
	if _, ok := crdSpecProperty(t, crdName, "color"); ok {
		t.Fatal("color already in the 0.1.0 CRD")
	}
	createObject(t, d, ns, "big", map[string]any{"size": "large", "replicas": int64(3)})
	createObject(t, d, ns, "small", map[string]any{"size": "small"})
	waitRelease(t, ns, "fluxgadget-big", nil)

	// Counts: two objects, none Ready until their HelmReleases are.
	waitCounts(t, def.Name, 2, 0)
	setReleaseStatus(t, ns, "fluxgadget-big", func(hr *helmv2.HelmRelease) {
		hr.Status.Conditions = []metav1.Condition{readyCondition(metav1.ConditionTrue, "InstallSucceeded", "installed")}
	})
	waitCounts(t, def.Name, 2, 1)

	// 0.2.0 adds a field: the CRD gains it without a restart.
	v2 := gadgetChart(t, gadgetV2, "size: small\nreplicas: 1\n")
	art.release(v2, "0.2.0")
	testenv.WaitFor(t, timeout, "CRD with color", func(ctx context.Context) error {
		d := waitDefinitionReason(t, def.Name, "Serving")
		if d.Status.ChartVersion != "0.2.0" {
			return fmt.Errorf("chart version %s", d.Status.ChartVersion)
		}
		if _, ok := crdSpecProperty(t, crdName, "color"); !ok {
			return fmt.Errorf("no color in the CRD")
		}
		return nil
	})
	served := waitDefinitionReason(t, def.Name, "Serving")
	obj := mustGetObject(t, d, ns, "small")
	obj.Object["spec"].(map[string]any)["color"] = "blue"
	if err := env.Client.Update(ctx, obj); err != nil {
		t.Fatalf("setting the new field: %v", err)
	}

	// 0.3.0 narrows the enum and changes a type: refused, objects named,
	// the 0.2.0 CRD still served.
	v3 := gadgetChart(t, gadgetV3, "size: small\n")
	art.release(v3, "0.3.0")
	refused := waitDefinitionReason(t, def.Name, "IncompatibleSchemaChange")
	msg := meta.FindStatusCondition(refused.Status.Conditions, "Ready").Message
	for _, want := range []string{ns + "/big", "spec.size", "spec.replicas", "0.3.0", "spec.acceptSchemaChange"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal message does not mention %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, ns+"/small") {
		t.Errorf("refusal names %s/small, which is valid under 0.3.0:\n%s", ns, msg)
	}
	if typ, _ := crdSpecProperty(t, crdName, "replicas"); typ != "integer" {
		t.Errorf("replicas type %q after a refused change, want integer (0.2.0 kept)", typ)
	}
	if refused.Status.ChartVersion != "0.2.0" || refused.Status.SchemaDigest != served.Status.SchemaDigest {
		t.Errorf("status after refusal: chart %s schema %s, want 0.2.0 %s", refused.Status.ChartVersion, refused.Status.SchemaDigest, served.Status.SchemaDigest)
	}
	// The kind is still served: a new object gets its HelmRelease.
	createObject(t, d, ns, "late", map[string]any{"size": "small"})
	waitRelease(t, ns, "fluxgadget-late", nil)

	// The administrator accepts exactly that schema.
	digest := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(msg[strings.Index(msg, "spec.acceptSchemaChange"):])
	if digest == "" {
		t.Fatalf("no digest to accept in %q", msg)
	}
	testenv.WaitFor(t, timeout, "accepting", func(ctx context.Context) error {
		d := &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: def.Name}, d); err != nil {
			return err
		}
		d.Spec.AcceptSchemaChange = digest
		return env.Client.Update(ctx, d)
	})
	testenv.WaitFor(t, timeout, "0.3.0 applied", func(ctx context.Context) error {
		d := waitDefinitionReason(t, def.Name, "Serving")
		if d.Status.ChartVersion != "0.3.0" || d.Status.SchemaDigest != digest {
			return fmt.Errorf("chart %s schema %s", d.Status.ChartVersion, d.Status.SchemaDigest)
		}
		return nil
	})
	if typ, _ := crdSpecProperty(t, crdName, "replicas"); typ != "string" {
		t.Errorf("replicas type %q after accepting, want string", typ)
	}

	// A digest mismatch: refused, CRD untouched.
	before := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, before); err != nil {
		t.Fatal(err)
	}
	url, _ := art.publish(gadgetChart(t, strings.Replace(gadgetV3, `"color"`, `"shade"`, 1), "size: small\n"), "0.4.0")
	art.advertise("0.4.0", url, "sha256:"+strings.Repeat("ab", 32))
	mismatch := waitDefinitionReason(t, def.Name, "ArtifactFailed")
	if m := meta.FindStatusCondition(mismatch.Status.Conditions, "Ready").Message; !strings.Contains(m, "digest mismatch") || !strings.Contains(m, "still serving") {
		t.Errorf("mismatch message: %s", m)
	}
	after := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Error("the CRD was written after a digest mismatch")
	}

	// Deleting the definition removes its HelmChart.
	deleteDefinition(t, def.Name)
	waitGone(t, "HelmChart", func(ctx context.Context) error {
		return env.Client.Get(ctx, types.NamespacedName{Namespace: srcNS, Name: art.name}, &sourcev1.HelmChart{})
	})
}

func waitCounts(t *testing.T, name string, objects, ready int32) {
	t.Helper()
	testenv.WaitFor(t, timeout, fmt.Sprintf("definition %s counts %d/%d", name, ready, objects), func(ctx context.Context) error {
		d := &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, d); err != nil {
			return err
		}
		if d.Status.Objects != objects || d.Status.ReadyObjects != ready {
			return fmt.Errorf("objects %d ready %d", d.Status.Objects, d.Status.ReadyObjects)
		}
		return nil
	})
}

// A HelmChart with chartkind's name that chartkind did not create is not
// taken over.
func TestForeignHelmChartNotTakenOver(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	srcNS := newNamespace(t)
	foreign := &sourcev1.HelmChart{ObjectMeta: metav1.ObjectMeta{Namespace: srcNS, Name: "chartkind-foreigngadgets"},
		Spec: sourcev1.HelmChartSpec{Chart: "other", SourceRef: sourcev1.LocalHelmChartSourceReference{Kind: "HelmRepository", Name: "x"}, Interval: metav1.Duration{Duration: time.Hour}}}
	if err := env.Client.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	def := gadgetDefinition("foreigngadgets", "ForeignGadget", srcNS)
	if err := env.Client.Create(ctx, def); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, def.Name) })
	d := waitDefinitionReason(t, def.Name, "SourceNotFound")
	if m := meta.FindStatusCondition(d.Status.Conditions, "Ready").Message; !strings.Contains(m, "not taken over") {
		t.Errorf("message: %s", m)
	}
	hc := &sourcev1.HelmChart{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(foreign), hc); err != nil {
		t.Fatal(err)
	}
	if hc.Spec.Chart != "other" || hc.Generation != 1 {
		t.Errorf("foreign HelmChart changed: %+v (generation %d)", hc.Spec, hc.Generation)
	}
	deleteDefinition(t, def.Name)
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(foreign), hc); apierrors.IsNotFound(err) {
		t.Error("deleting the definition deleted a HelmChart chartkind did not create")
	}
}

// Objects that exist before their kind is served (after a restart, or a
// retained CRD) are counted once it is, without waiting for another event.
func TestCountsAfterRestart(t *testing.T) {
	op := startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("countedwidget", "CountedWidget"))
	for i := range 3 {
		createObject(t, def, ns, fmt.Sprintf("c%d", i), map[string]any{"replicas": int64(1)})
	}
	waitCounts(t, def.Name, 3, 0)
	op.stop()
	testenv.WaitFor(t, timeout, "resetting the counts", func(ctx context.Context) error {
		d := &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: def.Name}, d); err != nil {
			return err
		}
		d.Status.Objects = 0
		return env.Client.Status().Update(ctx, d)
	})
	op.restart()
	waitCounts(t, def.Name, 3, 0)
}

// A definition with an inline schema and a chart reads the chart's
// values.yaml too; once it has, an unreadable artifact keeps the served CRD
// (the inline schema alone would make different fields nullable) instead of
// falling back to the inline schema without values.
func TestInlineSchemaKeepsServedChart(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	srcNS := newNamespace(t)
	if err := env.Client.Create(ctx, &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Namespace: srcNS, Name: "gadgets"},
		Spec: sourcev1.HelmRepositorySpec{URL: "http://127.0.0.1:1/unused", Interval: metav1.Duration{Duration: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	def := gadgetDefinition("inlinegadgets", "InlineGadget", srcNS)
	def.Spec.Schema = &apiextensionsv1.JSON{Raw: []byte(gadgetV1)}
	if err := env.Client.Create(ctx, def); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, def.Name) })
	// Served from the inline schema before the chart can be read.
	waitDefinitionReason(t, def.Name, "Serving")
	art := &artifactServer{t: t, repo: testenv.ServeChartRepo(t, ""), ns: srcNS, name: "chartkind-inlinegadgets"}
	art.release(gadgetChart(t, gadgetV1, "size: small\nreplicas: 1\n"), "0.1.0")
	var served *v1alpha1.ApplicationDefinition
	testenv.WaitFor(t, timeout, "served with the chart's values", func(ctx context.Context) error {
		served = waitDefinitionReason(t, def.Name, "Serving")
		if served.Status.ChartVersion != "0.1.0" {
			return fmt.Errorf("chart version %q", served.Status.ChartVersion)
		}
		return nil
	})
	before := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: served.Status.CRDName}, before); err != nil {
		t.Fatal(err)
	}
	url, _ := art.publish(gadgetChart(t, gadgetV1, "size: small\n"), "0.1.1")
	art.advertise("0.1.1", url, "sha256:"+strings.Repeat("cd", 32))
	failed := waitDefinitionReason(t, def.Name, "ArtifactFailed")
	if failed.Status.ChartVersion != "0.1.0" || failed.Status.SchemaDigest != served.Status.SchemaDigest {
		t.Errorf("status after an unreadable artifact: chart %q schema %s, want 0.1.0 %s", failed.Status.ChartVersion, failed.Status.SchemaDigest, served.Status.SchemaDigest)
	}
	after := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: served.Status.CRDName}, after); err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation {
		t.Errorf("the CRD changed (generation %d -> %d) while the artifact was unreadable", before.Generation, after.Generation)
	}
}
