package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/testenv"
)

// With defaults: Apply, a new schema version that adds a defaulted field makes
// the API server add it to every object it reads. Nobody edited those objects,
// so their HelmReleases must not change (a change would be a Helm upgrade of
// every release of the kind); an object that is then edited carries the
// default into its values.
func TestDefaultsDoNotUpgradeUneditedReleases(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := widgetDefinition("defaultwidget", "DefaultWidget")
	def.Spec.Defaults = v1alpha1.DefaultsApply
	def = createDefinition(t, def)
	createObject(t, def, ns, "d", map[string]any{"replicas": int64(2)})
	hr := waitRelease(t, ns, "defaultwidget-d", nil)
	waitObject(t, def, ns, "d", func(u *unstructured.Unstructured) error {
		if d, _, _ := unstructured.NestedString(u.Object, "status", "valuesDigest"); d == "" {
			return fmt.Errorf("not in step yet")
		}
		return nil
	})

	testenv.WaitFor(t, timeout, "adding a defaulted field", func(ctx context.Context) error {
		d := &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: def.Name}, d); err != nil {
			return err
		}
		d.Spec.Schema = &apiextensionsv1.JSON{Raw: []byte(strings.Replace(widgetSchema, `"extra": {"type": "string"},`, `"extra": {"type": "string"}, "color": {"type": "string", "default": "blue"},`, 1))}
		return env.Client.Update(ctx, d)
	})
	testenv.WaitFor(t, timeout, "object read with the default", func(ctx context.Context) error {
		u := mustGetObject(t, def, ns, "d")
		if c, _, _ := unstructured.NestedString(u.Object, "spec", "color"); c != "blue" {
			return fmt.Errorf("spec.color = %q", c)
		}
		return nil
	})
	// The kind's watch restarts with the new definition, so every object is
	// mirrored again; give that time to happen, then the release must be as
	// it was.
	time.Sleep(3 * time.Second)
	after, err := getRelease(context.Background(), ns, "defaultwidget-d")
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != hr.Generation || canon(values(after)) != canon(values(hr)) {
		t.Errorf("HelmRelease changed without an edit: generation %d -> %d, values %s -> %s", hr.Generation, after.Generation, canon(values(hr)), canon(values(after)))
	}

	// An edit carries everything in the spec, the default included.
	testenv.WaitFor(t, timeout, "editing", func(ctx context.Context) error {
		u := mustGetObject(t, def, ns, "d")
		u.Object["spec"].(map[string]any)["replicas"] = int64(3)
		return env.Client.Update(ctx, u)
	})
	waitRelease(t, ns, "defaultwidget-d", func(hr *helmv2.HelmRelease) error {
		v := values(hr)
		if v["replicas"] != float64(3) || v["color"] != "blue" {
			return fmt.Errorf("values %v", v)
		}
		return nil
	})
}
