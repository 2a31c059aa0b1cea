package insight

import (
	"context"
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// While the first install waits there is no inventory yet: the objects are
// taken from the manifest of the newest release record, so the reason the
// wait will time out is shown while it waits.
func TestPendingInstallUsesReleaseManifest(t *testing.T) {
	manifest := strings.Join([]string{
		"---\n# Source: nginx/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\n",
		"---\n# Source: nginx/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nginx-web\n  labels: {app: x}\nspec:\n  replicas: 2\n",
		"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: other\n  namespace: elsewhere\n",
	}, "\n")
	older := helmRecord(t, &release.Release{Name: "web", Namespace: ns, Version: 1, Manifest: "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: old\n",
		Info: &release.Info{Status: release.StatusSuperseded}})
	rec := helmRecord(t, &release.Release{Name: "web", Namespace: ns, Version: 2, Manifest: manifest,
		Info: &release.Info{Status: release.StatusPendingInstall}})
	cl := newClient(older, rec,
		deployment("nginx-web", 2, 0),
		pod("nginx-web", "nginx-web-7f9c", unschedulable(insufficient)),
	)
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: helmv2.HelmReleaseSpec{StorageNamespace: storageNS}}
	rep, err := Observe(context.Background(), cl, hr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := joined(rep.Health.Problems)
	for _, want := range []string{
		"Deployment shop/nginx-web: 0/2 available",
		"Pod shop/nginx-web-7f9c: Unschedulable: 0/1 nodes are available: 1 Insufficient ephemeral-storage.",
		"Service elsewhere/other: not found",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "old") || strings.Contains(got, "ConfigMap") {
		t.Errorf("read objects of an older revision or of kinds not checked:\n%s", got)
	}

	// No record at all: Unknown, and says so.
	rep, err = Observe(context.Background(), newClient(), hr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Health.Status != StatusUnknown || !strings.Contains(joined(rep.Health.Problems), "no inventory recorded yet") {
		t.Errorf("Health = %+v", rep.Health)
	}
}

func TestManifestRefs(t *testing.T) {
	refs := manifestRefs("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n---\n---\nnot yaml: [\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  namespace: other\n", "shop")
	if len(refs) != 2 || refs[0] != (Ref{Namespace: "other", Name: "j", Group: "batch", Kind: "Job", Version: "v1"}) ||
		refs[1] != (Ref{Namespace: "shop", Name: "s", Kind: "Secret", Version: "v1"}) {
		t.Errorf("refs = %+v", refs)
	}
}

func TestSchedulerMessage(t *testing.T) {
	for in, want := range map[string]string{
		"0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.": "0/1 nodes are available: 1 Insufficient cpu.",
		"0/1 nodes are available: 1 Insufficient ephemeral-storage. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..":               "0/1 nodes are available: 1 Insufficient ephemeral-storage.",
		"0/3 nodes are available: 3 node(s) had untolerated taint {a: b}.":                                                                                               "0/3 nodes are available: 3 node(s) had untolerated taint {a: b}.",
	} {
		if got := schedulerMessage(in); got != want {
			t.Errorf("schedulerMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
