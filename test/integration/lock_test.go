package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/testenv"
)

func releaseValues(hr *helmv2.HelmRelease) map[string]any {
	var m map[string]any
	if hr.Spec.Values != nil {
		_ = json.Unmarshal(hr.Spec.Values.Raw, &m)
	}
	return m
}

// editRelease changes the HelmRelease's values with f, retrying on conflicts.
func editRelease(t *testing.T, ns, name string, f func(values map[string]any)) {
	t.Helper()
	testenv.WaitFor(t, timeout, "editing HelmRelease "+ns+"/"+name, func(ctx context.Context) error {
		hr, err := getRelease(ctx, ns, name)
		if err != nil {
			return err
		}
		v := releaseValues(hr)
		if v == nil {
			v = map[string]any{}
		}
		f(v)
		raw, _ := json.Marshal(v)
		hr.Spec.Values = &apiextensionsv1.JSON{Raw: raw}
		return env.Client.Update(ctx, hr)
	})
}

// A definition's spec.values: the API server refuses locked paths and the
// paths of spec.values.set, naming the path and the definition; the
// HelmRelease gets the administrator's values; a direct edit of a locked
// value on the HelmRelease is undone with a LockedValueRestored event while
// other edits are pulled into the object; kubectl explain says a field is
// locked; and locking a path an existing object sets is an incompatible
// schema change naming the object, which keeps its value.
func TestLockedValues(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := widgetDefinition("lockedwidget", "LockedWidget")
	def.Spec.Values = &v1alpha1.AdministratorValues{
		Set:    &apiextensionsv1.JSON{Raw: []byte(`{"extra":"admin"}`)},
		Locked: []string{"tags.team", "size"},
	}
	def = createDefinition(t, def)

	for path, spec := range map[string]map[string]any{
		"size":      {"size": "L"},
		"tags.team": {"tags": map[string]any{"team": "mine"}},
		"extra":     {"extra": "mine"},
	} {
		err := env.Client.Create(context.Background(), newObject(def, ns, "refused", spec))
		want := "spec." + path + " is locked: it is set by the administrator (ApplicationDefinition lockedwidget)"
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("creating an object setting %s: %v, want Invalid with %q", path, err, want)
		}
	}

	// A null at a locked path, or at a parent of one, would delete the
	// chart's default in Helm: the API server drops it, and no null reaches
	// the HelmRelease.
	nulls := createObject(t, def, ns, "nulls", map[string]any{"replicas": int64(1), "size": nil, "tags": nil})
	waitRelease(t, ns, "lockedwidget-nulls", func(hr *helmv2.HelmRelease) error {
		v := releaseValues(hr)
		for _, k := range []string{"size", "tags"} {
			if _, has := v[k]; has {
				return fmt.Errorf("values %v: %s: null reached the release", v, k)
			}
		}
		return nil
	})
	if err := env.Client.Delete(context.Background(), nulls); err != nil {
		t.Fatal(err)
	}

	obj := createObject(t, def, ns, "w1", map[string]any{"replicas": int64(1), "tags": map[string]any{"other": "y"}})
	rel := "lockedwidget-w1"
	waitRelease(t, ns, rel, func(hr *helmv2.HelmRelease) error {
		if v := releaseValues(hr); v["extra"] != "admin" || v["replicas"] != float64(1) {
			return fmt.Errorf("values %v", v)
		}
		return nil
	})

	// A locked value edited on the HelmRelease is put back.
	editRelease(t, ns, rel, func(v map[string]any) { v["extra"] = "hacked" })
	waitEvent(t, ns, obj.GetUID(), mirror.EventLockedValueRestored, "Warning")
	waitRelease(t, ns, rel, func(hr *helmv2.HelmRelease) error {
		if v := releaseValues(hr); v["extra"] != "admin" {
			return fmt.Errorf("values %v", v)
		}
		return nil
	})
	if _, has := mustGetObject(t, def, ns, "w1").Object["spec"].(map[string]any)["extra"]; has {
		t.Error("the administrator's value was copied into the object")
	}

	// Any other edit is pulled as before.
	editRelease(t, ns, rel, func(v map[string]any) { v["replicas"] = 3 })
	waitObject(t, def, ns, "w1", func(u *unstructured.Unstructured) error {
		if r, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); r != 3 {
			return fmt.Errorf("replicas %d", r)
		}
		if _, has, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "extra"); has {
			return fmt.Errorf("extra pulled into the object")
		}
		return nil
	})
	waitRelease(t, ns, rel, func(hr *helmv2.HelmRelease) error {
		if v := releaseValues(hr); v["extra"] != "admin" || v["replicas"] != float64(3) {
			return fmt.Errorf("values %v", v)
		}
		return nil
	})

	// In step, with the administrator's values merged: an idle operator writes nothing.
	waitCounts(t, def.Name, 1, 0)
	assertNoWrites(t, def, ns, 4*time.Second, "in steady state", nil)

	if out := kubectl(t, "explain", "lockedwidgets.spec.size"); !strings.Contains(out, "Locked by the administrator (ApplicationDefinition lockedwidget)") {
		t.Errorf("kubectl explain:\n%s", out)
	}

	// A changed administrator value reaches existing HelmReleases.
	updateDefinition(t, def.Name, func(d *v1alpha1.ApplicationDefinition) {
		d.Spec.Values.Set = &apiextensionsv1.JSON{Raw: []byte(`{"extra":"admin2"}`)}
	})
	waitRelease(t, ns, rel, func(hr *helmv2.HelmRelease) error {
		if v := releaseValues(hr); v["extra"] != "admin2" || v["replicas"] != float64(3) {
			return fmt.Errorf("values %v", v)
		}
		return nil
	})

	// Locking a path an existing object sets: refused, the object named, nothing dropped.
	updateDefinition(t, def.Name, func(d *v1alpha1.ApplicationDefinition) {
		d.Spec.Values.Locked = append(d.Spec.Values.Locked, "replicas")
	})
	d := waitDefinitionReason(t, def.Name, "IncompatibleSchemaChange")
	if m := meta.FindStatusCondition(d.Status.Conditions, "Ready").Message; !strings.Contains(m, ns+"/w1") || !strings.Contains(m, "spec.replicas is locked") {
		t.Errorf("IncompatibleSchemaChange message does not name the object and the lock: %s", m)
	}
	if r, _, _ := unstructured.NestedInt64(mustGetObject(t, def, ns, "w1").Object, "spec", "replicas"); r != 3 {
		t.Errorf("replicas %d after the refused lock", r)
	}
}

// updateDefinition changes the definition with f, retrying on conflicts.
func updateDefinition(t *testing.T, name string, f func(d *v1alpha1.ApplicationDefinition)) {
	t.Helper()
	testenv.WaitFor(t, timeout, "updating definition "+name, func(ctx context.Context) error {
		d := &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, d); err != nil {
			return err
		}
		f(d)
		return env.Client.Update(ctx, d)
	})
}
