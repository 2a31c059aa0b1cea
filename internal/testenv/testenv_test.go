package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/repo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestEnvLifecycle starts the full environment, checks that each component does its job, then
// stops it and checks that no process and no temporary directory is left.
func TestEnvLifecycle(t *testing.T) {
	env := Start(t, Options{ControllerManager: true, Flux: true})
	ctx := context.Background()
	c := env.Client

	t.Run("ConfigMapRoundTrip", func(t *testing.T) {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "round-trip", Namespace: "default"},
			Data:       map[string]string{"greeting": "hello"},
		}
		if err := c.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
		got := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(cm), got); err != nil {
			t.Fatal(err)
		}
		if got.Data["greeting"] != "hello" {
			t.Fatalf("data = %v, want greeting=hello", got.Data)
		}
		got.Data["greeting"] = "bonjour"
		if err := c.Update(ctx, got); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(cm), got); err != nil || got.Data["greeting"] != "bonjour" {
			t.Fatalf("after update: data=%v err=%v", got.Data, err)
		}
		if err := c.Delete(ctx, got); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(cm), got); !apierrors.IsNotFound(err) {
			t.Fatalf("after delete: err = %v, want NotFound", err)
		}
	})

	t.Run("Kubectl", func(t *testing.T) {
		out, err := exec.Command(env.KubectlPath, "--kubeconfig", env.KubeconfigPath, "version", "-o", "yaml").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl version: %v\n%s", err, out)
		}
		// A stamped server version is what lets Helm check kubeVersion constraints.
		if !strings.Contains(string(out), "gitVersion: v1.36.3") || strings.Contains(string(out), "master") {
			t.Fatalf("kubectl version output lacks server v1.36.3:\n%s", out)
		}
		out, err = exec.Command(env.KubectlPath, "--kubeconfig", env.KubeconfigPath, "get", "crd", "-o", "name").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl get crd: %v\n%s", err, out)
		}
		for _, crd := range []string{"helmreleases.helm.toolkit.fluxcd.io", "helmrepositories.source.toolkit.fluxcd.io"} {
			if !strings.Contains(string(out), crd) {
				t.Errorf("CRD %s not installed; kubectl get crd:\n%s", crd, out)
			}
		}
	})

	t.Run("GarbageCollection", func(t *testing.T) {
		owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: "default"}}
		if err := c.Create(ctx, owner); err != nil {
			t.Fatal(err)
		}
		dependent := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name: "dependent", Namespace: "default",
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID,
				BlockOwnerDeletion: ptr.To(true),
			}},
		}}
		if err := c.Create(ctx, dependent); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, owner); err != nil {
			t.Fatal(err)
		}
		env.WaitForDeleted(t, dependent, time.Minute)
	})

	t.Run("NamespaceDeletion", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}
		if err := c.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "inside", Namespace: ns.Name}}
		if err := c.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, ns); err != nil {
			t.Fatal(err)
		}
		env.WaitForDeleted(t, ns, time.Minute)
	})

	t.Run("StopLeavesNothing", func(t *testing.T) {
		groups := env.ProcessGroups()
		// kube-apiserver, etcd, kube-controller-manager, source-controller, helm-controller.
		if len(groups) != 5 {
			t.Fatalf("process groups = %v, want 5 (kube-apiserver, etcd and 3 children)", groups)
		}
		assertStopLeavesNothing(t, env, groups)
	})
}

// TestWatchdogKillsOrphans runs a test binary that starts an environment and dies without
// stopping it, as on a test timeout or a panic in TestMain, and checks that the watchdog
// kills kube-apiserver and etcd and removes the temporary directory.
func TestWatchdogKillsOrphans(t *testing.T) {
	if os.Getenv("TESTENV_ORPHAN_HELPER") == "1" {
		env, _, err := StartMain(Options{})
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(3)
		}
		fmt.Println("DIR", env.Dir)
		for _, g := range env.ProcessGroups() {
			fmt.Println("PGID", g)
		}
		os.Exit(7) // no Stop: the environment is orphaned
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdogKillsOrphans$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTENV_ORPHAN_HELPER=1", "TESTENV_KEEP=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var groups []int
	var dir string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 2)
		switch f[0] {
		case "PGID":
			g, _ := strconv.Atoi(f[1])
			groups = append(groups, g)
		case "DIR":
			dir = f[1]
		case "ERROR":
			t.Errorf("helper: %s", sc.Text())
		}
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Fatalf("helper exited with %v, want exit status 7", err)
	}
	// Should the watchdog fail, do not leave the orphans running.
	t.Cleanup(func() {
		for _, g := range groups {
			_ = killGroup(g, stopGracePeriod)
		}
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	})
	if len(groups) != 2 || dir == "" {
		t.Fatalf("helper reported groups %v and dir %q, want 2 groups and a dir", groups, dir)
	}
	WaitFor(t, 30*time.Second, "the watchdog to kill the orphaned control plane", func(context.Context) error {
		for _, g := range groups {
			if groupExists(g) {
				return fmt.Errorf("process group %d still exists", g)
			}
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			return fmt.Errorf("%s still exists", dir)
		}
		return nil
	})
}

func TestMissingBinariesSayRunMakeTestbin(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module github.com/chartkind/chartkind\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := startIn(root, Options{Flux: true})
	if err == nil || !strings.Contains(err.Error(), "run `make testbin`") {
		t.Fatalf("err = %v, want one telling to run `make testbin`", err)
	}
	for _, name := range []string{"kube-apiserver", "etcd", "source-controller", "helm-controller", "Flux CRDs"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name missing %s: %v", name, err)
		}
	}
}

func TestChartRepoPublish(t *testing.T) {
	charts := t.TempDir()
	writeChart(t, filepath.Join(charts, "alpha"), "alpha", "0.1.0")
	writeChart(t, filepath.Join(charts, "beta"), "beta", "1.0.0")
	if err := os.WriteFile(filepath.Join(charts, "README.md"), []byte("not a chart"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := ServeChartRepo(t, charts)

	idx := fetchIndex(t, r.URL)
	for name, version := range map[string]string{"alpha": "0.1.0", "beta": "1.0.0"} {
		cv, err := idx.Get(name, version)
		if err != nil {
			t.Fatalf("index lacks %s %s: %v", name, version, err)
		}
		if cv.Digest == "" || len(cv.URLs) != 1 || strings.Contains(cv.URLs[0], "/") {
			t.Errorf("%s: digest %q urls %v, want a digest and one relative URL", name, cv.Digest, cv.URLs)
		}
		resp, err := http.Get(r.URL + "/" + cv.URLs[0])
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", cv.URLs[0], resp.Status)
		}
	}

	if name, v := r.Publish(t, filepath.Join(charts, "alpha"), "0.2.0"); name != "alpha" || v != "0.2.0" {
		t.Fatalf("Publish = %s %s, want alpha 0.2.0", name, v)
	}
	idx = fetchIndex(t, r.URL)
	if got := len(idx.Entries["alpha"]); got != 2 {
		t.Fatalf("alpha has %d versions after Publish, want 2", got)
	}
	if latest, err := idx.Get("alpha", ""); err != nil || latest.Version != "0.2.0" {
		t.Fatalf("latest alpha = %v (%v), want 0.2.0", latest, err)
	}
}

func writeChart(t *testing.T, dir, name, version string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Chart.yaml":               fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\n", name, version),
		"values.yaml":              "greeting: hello\n",
		"templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
	}
	for p, content := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func fetchIndex(t *testing.T, url string) *repo.IndexFile {
	t.Helper()
	resp, err := http.Get(url + "/index.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET index.yaml: %s %v", resp.Status, err)
	}
	p := filepath.Join(t.TempDir(), "index.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	idx, err := repo.LoadIndexFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// assertStopLeavesNothing stops env and checks that none of its process groups
// (all running before) nor its directory is left.
func assertStopLeavesNothing(t *testing.T, env *Env, groups []int) {
	t.Helper()
	for _, g := range groups {
		if !groupExists(g) {
			t.Fatalf("process group %d is not running before Stop", g)
		}
	}
	if err := env.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, g := range groups {
		if groupExists(g) {
			t.Errorf("process group %d still exists after Stop", g)
		}
		if processExists(g) {
			t.Errorf("process %d still exists (not reaped) after Stop", g)
		}
	}
	if _, err := os.Stat(env.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop (err=%v)", env.Dir, err)
	}
}
