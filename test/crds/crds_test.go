// Package crds applies CRDs made by `chartkind generate` to a real
// kube-apiserver and checks what the offline checks promise: the API server
// accepts every CRD, serves it, validates objects with it the way the README
// says, and stores a chart's own values.yaml as a spec without pruning a field.
package crds

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/internal/cli"
	"github.com/chartkind/chartkind/internal/corpus"
	"github.com/chartkind/chartkind/internal/testenv"
)

func generate(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.Main(append([]string{"generate", "--quiet"}, args...), &out, &errb); code != 0 {
		t.Fatalf("chartkind generate %v: exit %d: %s", args, code, errb.String())
	}
	return out.String()
}

func kubectl(t *testing.T, env *testenv.Env, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(env.KubectlPath, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.KubeconfigPath)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func waitEstablished(t *testing.T, env *testenv.Env, name string) {
	t.Helper()
	testenv.WaitFor(t, time.Minute, "CRD "+name+" Established", func(ctx context.Context) error {
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, c); err != nil {
			return err
		}
		for _, cond := range c.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not Established yet")
	})
}

// TestReadmeWalkthrough is the README's `chartkind generate` walkthrough:
// generate, kubectl apply, kubectl explain, then objects that the CRD accepts
// and refuses.
func TestReadmeWalkthrough(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	stream := generate(t, "../../config/samples/chartkind_v1alpha1_applicationdefinition_postgres.yaml", "../../examples/charts/postgres")
	if out, err := kubectl(t, env, stream, "apply", "-f", "-"); err != nil || !strings.Contains(out, "postgreses.apps.chartkind.io created") {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	waitEstablished(t, env, "postgreses.apps.chartkind.io")

	testenv.WaitFor(t, time.Minute, "kubectl explain", func(context.Context) error {
		out, err := kubectl(t, env, "", "explain", "postgres.spec.resources")
		if err != nil || !strings.Contains(out, "Resources of each instance") || !strings.Contains(out, "cpu") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	for name, tc := range map[string]struct {
		spec string
		want string // "" means accepted
	}{
		"empty spec":               {`{}`, ""},
		"sample":                   {`{"version": "17", "replicas": 3, "size": "20Gi", "users": {"orders": {"roles": ["login"]}}}`, ""},
		"quantity as integer":      {`{"size": 10}`, ""},
		"null removes a default":   {`{"replicas": null, "version": null}`, ""},
		"replicas above maximum":   {`{"replicas": 9}`, "spec.replicas"},
		"version not in enum":      {`{"version": "13"}`, "spec.version"},
		"wrong type":               {`{"backup": {"enabled": "yes"}}`, "spec.backup.enabled"},
		"unknown field in closed":  {`{"resources": {"gpu": 1}}`, "spec.resources"},
		"role not in enum":         {`{"users": {"x": {"roles": ["root"]}}}`, "spec.users.x.roles[0]"},
		"quantity pattern":         {`{"size": "lots"}`, "spec.size"},
		"database owner too short": {`{"databases": {"d": {"owner": ""}}}`, "spec.databases.d.owner"},
	} {
		t.Run(name, func(t *testing.T) {
			obj := fmt.Sprintf(`{"apiVersion": "apps.chartkind.io/v1alpha1", "kind": "Postgres", "metadata": {"name": %q, "namespace": "default"}, "spec": %s}`,
				strings.ReplaceAll(strings.ToLower(name), " ", "-"), tc.spec)
			out, err := kubectl(t, env, obj, "create", "-f", "-")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %s", out)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error naming %s", tc.want)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("error does not name %s:\n%s", tc.want, out)
			}
		})
	}
}

// TestCorpusOnRealAPIServer applies the CRD of every corpus chart to a real
// API server, creates an object whose spec is the chart's own values.yaml, and
// reads it back: nothing may be refused or pruned.
func TestCorpusOnRealAPIServer(t *testing.T) {
	charts := corpus.Load(t)
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	// Charts run in parallel (the API server establishes CRDs concurrently); the
	// group below ends before the environment is stopped.
	t.Run("charts", func(t *testing.T) { corpusCharts(t, env, ctx, charts) })
}

func corpusCharts(t *testing.T, env *testenv.Env, ctx context.Context, charts []corpus.Chart) {
	for _, c := range charts {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := yaml.UnmarshalStrict([]byte(generate(t, c.Dir)), crd); err != nil {
				t.Fatal(err)
			}
			if err := env.Client.Create(ctx, crd); err != nil {
				t.Fatalf("API server refused the CRD: %v", err)
			}
			waitEstablished(t, env, crd.Name)

			var values map[string]any
			if err := yaml.Unmarshal(c.Values, &values); err != nil {
				t.Fatal(err)
			}
			values = normalise(t, values)
			gvk := crd.Spec.Names.Kind
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": crd.Spec.Group + "/" + crd.Spec.Versions[0].Name,
				"kind":       gvk,
				"metadata":   map[string]any{"name": "defaults", "namespace": "default"},
				"spec":       values,
			}}
			// The discovery of a new kind can lag its Established condition.
			testenv.WaitFor(t, 30*time.Second, "create with values.yaml as spec", func(ctx context.Context) error {
				err := env.Client.Create(ctx, obj.DeepCopy())
				if apierrors.IsInvalid(err) {
					t.Fatalf("API server refused the chart's own values.yaml: %v", err)
				}
				return err
			})
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(obj.GroupVersionKind())
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "defaults"}, got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalise(t, got.Object["spec"]), values) {
				a, _ := json.Marshal(values)
				b, _ := json.Marshal(got.Object["spec"])
				t.Fatalf("stored spec differs from values.yaml (pruned?)\nsent:   %.2000s\nstored: %.2000s", a, b)
			}
			empty := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": obj.GetAPIVersion(), "kind": gvk,
				"metadata": map[string]any{"name": "empty", "namespace": "default"}, "spec": map[string]any{},
			}}
			if err := env.Client.Create(ctx, empty); err != nil {
				t.Fatalf("API server refused an empty spec: %v", err)
			}
			// Free the API server's memory for the next chart.
			_ = env.Client.Delete(ctx, crd, &client.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationBackground)})
		})
	}
}

// normalise round-trips through JSON so numbers compare alike.
func normalise(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }
