package insight

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

const storageNS = "flux-system"

// helmRecord returns the Secret Helm's secret storage driver writes for rls:
// encodeRelease (helm.sh/helm/v3 pkg/storage/driver/util.go: json.Marshal,
// gzip at BestCompression, base64 StdEncoding) under data key "release", in
// a Secret of type helm.sh/release.v1 named by makeKey, with newSecretsObject's
// labels. (The driver package itself cannot be imported here: it pulls SQL
// dependencies the module does not have.)
func helmRecord(t testing.TB, rls *release.Release) *corev1.Secret {
	t.Helper()
	b, err := json.Marshal(rls)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = w.Write(b); err != nil {
		t.Fatal(err)
	}
	w.Close()
	s := base64.StdEncoding.EncodeToString(buf.Bytes())
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: storageNS, Name: ReleaseRecordName(rls.Name, rls.Version), Labels: map[string]string{
			"name": rls.Name, "owner": "helm", "status": rls.Info.Status.String(), "version": fmt.Sprint(rls.Version),
		}},
		Type: "helm.sh/release.v1",
		Data: map[string][]byte{"release": []byte(s)},
	}
}

func releaseWithHistory(versions ...int) *helmv2.HelmRelease {
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
	hr.Status.Inventory = &helmv2.ResourceInventory{}
	hr.Status.StorageNamespace = storageNS
	for _, v := range versions {
		hr.Status.History = append(hr.Status.History, &helmv2.Snapshot{Name: "shop-web", Namespace: ns, Version: v})
	}
	return hr
}

func TestReleaseNotes(t *testing.T) {
	notes := "Visit https://shop.example.com\nLogin: kubectl get secret db -o jsonpath='{.data.password}'\n\n"
	rec := helmRecord(t, &release.Release{Name: "shop-web", Namespace: ns, Version: 3,
		Info:     &release.Info{Status: release.StatusDeployed, Notes: notes},
		Manifest: strings.Repeat("---\nkind: ConfigMap\n", 1000)})
	old := helmRecord(t, &release.Release{Name: "shop-web", Namespace: ns, Version: 2,
		Info: &release.Info{Status: release.StatusSuperseded, Notes: "old notes"}})
	cl := newClient(rec, old)

	// History out of order: the latest version wins, and hr is not modified.
	hr := releaseWithHistory(2, 3)
	rep := observe(t, cl, hr, Options{Notes: true})
	if want := strings.TrimRight(notes, "\n"); rep.Access.Notes != want {
		t.Errorf("Notes = %q, want %q", rep.Access.Notes, want)
	}
	if hr.Status.History[0].Version != 2 {
		t.Error("Observe reordered hr.Status.History")
	}
	if len(rep.Access.Omitted) != 0 {
		t.Errorf("Omitted = %v", rep.Access.Omitted)
	}

	// Not wanted: not read.
	c := &counter{Reader: cl}
	if rep := observe(t, c, hr, Options{}); rep.Access.Notes != "" || len(c.calls) != 0 {
		t.Errorf("notes read although not wanted: %q %v", rep.Access.Notes, c.calls)
	}

	// Truncated to MaxNotes bytes, "…" included.
	rep = observe(t, cl, hr, Options{Notes: true, MaxNotes: 20})
	if rep.Access.Notes != "Visit https://sho…" || len(rep.Access.Notes) > 20 {
		t.Errorf("truncated Notes = %q (%d bytes)", rep.Access.Notes, len(rep.Access.Notes))
	}

	// Storage namespace falls back to spec, then to the HelmRelease's namespace.
	hr2 := releaseWithHistory(3)
	hr2.Status.StorageNamespace = ""
	hr2.Spec.StorageNamespace = storageNS
	if rep := observe(t, cl, hr2, Options{Notes: true}); !strings.HasPrefix(rep.Access.Notes, "Visit") {
		t.Errorf("spec.storageNamespace not used: %q", rep.Access.Notes)
	}
}

// TestDecodeMatchesHelmEncoding decodes a release that is not Helm's Go type
// (as Helm 4's release/v1 JSON, same "info"/"notes" keys), in the gzip'ed
// form and in the uncompressed form decodeRelease still accepts, and rejects
// malformed records.
func TestDecodeMatchesHelmEncoding(t *testing.T) {
	b, _ := json.Marshal(map[string]any{"name": "x", "info": map[string]any{"status": "deployed", "notes": "héllo"}, "version": 1})
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(b)
	w.Close()
	for name, data := range map[string]string{
		"gzip":  base64.StdEncoding.EncodeToString(buf.Bytes()),
		"plain": base64.StdEncoding.EncodeToString(b),
	} {
		if n, err := decodeNotes([]byte(data)); err != nil || n != "héllo" {
			t.Errorf("%s: notes %q, err %v", name, n, err)
		}
	}
	for name, data := range map[string]string{
		"empty":     "",
		"not b64":   "%%%",
		"not json":  base64.StdEncoding.EncodeToString([]byte("[1,2]")),
		"too large": strings.Repeat("A", maxRecord+4),
	} {
		if _, err := decodeNotes([]byte(data)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if n, err := decodeNotes([]byte(base64.StdEncoding.EncodeToString([]byte(`{"name":"x"}`)))); err != nil || n != "" {
		t.Errorf("no info: %q %v", n, err)
	}
}

func TestReleaseNotesMissingOrUnreadable(t *testing.T) {
	// No record (uninstalled, or history points at a pruned revision).
	rep := observe(t, newClient(), releaseWithHistory(7), Options{Notes: true})
	if rep.Access.Notes != "" || len(rep.Access.Omitted) != 0 {
		t.Errorf("missing record: %+v", rep.Access)
	}
	// No history yet.
	rep = observe(t, newClient(), releaseWithHistory(), Options{Notes: true})
	if rep.Access.Notes != "" || len(rep.Access.Omitted) != 0 {
		t.Errorf("no history: %+v", rep.Access)
	}
	// Forbidden: an omission, not an error.
	forbid := interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, key.Name, errors.New("denied"))
	}}
	rep = observe(t, interceptor.NewClient(newClient(), forbid), releaseWithHistory(1), Options{Notes: true})
	if want := "release notes Secret flux-system/sh.helm.release.v1.shop-web.v1: forbidden"; len(rep.Access.Omitted) != 1 || rep.Access.Omitted[0] != want {
		t.Errorf("Omitted = %q, want %q", rep.Access.Omitted, want)
	}
	// Corrupt record: an omission too.
	bad := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: storageNS, Name: ReleaseRecordName("shop-web", 1)},
		Data: map[string][]byte{"release": []byte("not base64!")}}
	rep = observe(t, newClient(bad), releaseWithHistory(1), Options{Notes: true})
	if len(rep.Access.Omitted) != 1 || !strings.Contains(rep.Access.Omitted[0], "decoding base64") {
		t.Errorf("Omitted = %q", rep.Access.Omitted)
	}
}

func mustUnstructured(t testing.TB, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// BenchmarkObserve observes a release of 15 objects, two workloads not
// Current, with notes.
func BenchmarkObserve(b *testing.B) {
	objs := append(services(),
		deployment("web", 3, 1), deployment("worker", 2, 2), statefulSet("db", 1, 0),
		&corev1.Secret{ObjectMeta: om("db"), Data: map[string][]byte{"password": []byte("x")}},
		&corev1.ConfigMap{ObjectMeta: om("conf")},
		&corev1.ServiceAccount{ObjectMeta: om("web")},
	)
	for i := range 5 {
		objs = append(objs, &corev1.ConfigMap{ObjectMeta: om(fmt.Sprintf("conf-%d", i))})
	}
	if len(objs) != 15 {
		b.Fatalf("%d objects", len(objs))
	}
	all := append(objs[:len(objs):len(objs)],
		pod("web", "web-a", unschedulable(insufficient)), pod("web", "web-b", nil), pod("web", "web-c", nil),
		pod("db", "db-0", unschedulable(insufficient)),
		helmRecord(b, &release.Release{Name: "shop-web", Version: 1, Info: &release.Info{Notes: "hello"}}),
	)
	cl := newClient(all...)
	hr := releaseOf(b, objs...)
	hr.Status.StorageNamespace = storageNS
	hr.Status.History = helmv2.Snapshots{{Name: "shop-web", Version: 1}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Observe(ctx, cl, hr, Options{Notes: true}); err != nil {
			b.Fatal(err)
		}
	}
}
