package mirror

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxmeta "github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/definition"
)

// fullRelease sets every release setting the definition may own.
func fullRelease(def *v1alpha1.ApplicationDefinition) {
	hist := 3
	r := &def.Spec.Release
	r.StorageNamespace = "helm-storage"
	r.MaxHistory = &hist
	r.DependsOn = []helmv2.DependencyReference{{Name: "cnpg", Namespace: "operators"}}
	r.KubeConfig = &fluxmeta.KubeConfigReference{SecretRef: &fluxmeta.SecretKeyReference{Name: "tenant-kubeconfig"}}
	r.DriftDetection = &helmv2.DriftDetection{Mode: helmv2.DriftDetectionEnabled,
		Ignore: []helmv2.IgnoreRule{{Paths: []string{"/spec/replicas"}}}}
	r.HealthCheckExprs = []kustomize.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap",
		HealthCheckExpressions: kustomize.HealthCheckExpressions{Current: "data.ready == 'yes'"}}}
	r.PostRenderers = []helmv2.PostRenderer{{Kustomize: &helmv2.Kustomize{
		Images: []kustomize.Image{{Name: "redis", NewTag: "7.4-hardened"}}}}}
	r.Test = &helmv2.Test{Enable: true}
	r.Rollback = &helmv2.Rollback{CleanupOnFail: true}
	r.Uninstall = &helmv2.Uninstall{KeepHistory: true}
}

func fieldsTarget(def *v1alpha1.ApplicationDefinition) (*target, *unstructured.Unstructured) {
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"replicas": int64(1)}}}
	obj.SetAPIVersion("apps.chartkind.io/v1alpha1")
	obj.SetKind("Postgres")
	obj.SetName("a")
	obj.SetNamespace("db")
	obj.SetUID("uid-1")
	obj.SetGeneration(1)
	tg := &target{def: def, names: definition.Effective(def), gvk: GVK(def)}
	tg.key.Namespace, tg.key.Name = "db", "a"
	return tg, obj
}

// Every release setting of the definition reaches the HelmRelease, and each
// one edited on the HelmRelease is put back.
func TestReleaseFieldsMirroredAndRestored(t *testing.T) {
	def := testDef("pg", "Postgres", "postgres")
	fullRelease(def)
	tg, obj := fieldsTarget(def)
	m := &Mirror{}
	values, _ := specValues(obj)

	hr := &helmv2.HelmRelease{}
	m.applyDesired(tg, obj, hr, values)
	s := hr.Spec
	r := def.Spec.Release
	checks := map[string][2]any{
		"storageNamespace": {s.StorageNamespace, r.StorageNamespace},
		"maxHistory":       {*s.MaxHistory, *r.MaxHistory},
		"dependsOn":        {s.DependsOn, r.DependsOn},
		"kubeConfig":       {s.KubeConfig, r.KubeConfig},
		"driftDetection":   {s.DriftDetection, r.DriftDetection},
		"healthCheckExprs": {s.HealthCheckExprs, r.HealthCheckExprs},
		"postRenderers":    {s.PostRenderers, r.PostRenderers},
		"test":             {s.Test, r.Test},
		"rollback":         {s.Rollback, r.Rollback},
		"uninstall":        {s.Uninstall, r.Uninstall},
	}
	for field, c := range checks {
		if !reflect.DeepEqual(c[0], c[1]) {
			t.Errorf("%s: HelmRelease has %+v, want %+v", field, c[0], c[1])
		}
	}
	// The HelmRelease holds copies: editing it must not edit the definition.
	*hr.Spec.MaxHistory = 99
	if *def.Spec.Release.MaxHistory != 3 {
		t.Fatalf("HelmRelease shares memory with the definition")
	}
	hr.CreationTimestamp = metav1.NewTime(time.Now())

	edits := map[string]func(s *helmv2.HelmReleaseSpec){
		"storageNamespace": func(s *helmv2.HelmReleaseSpec) { s.StorageNamespace = "elsewhere" },
		"maxHistory":       func(s *helmv2.HelmReleaseSpec) { v := 0; s.MaxHistory = &v },
		"dependsOn added": func(s *helmv2.HelmReleaseSpec) {
			s.DependsOn = append(s.DependsOn, helmv2.DependencyReference{Name: "x"})
		},
		"dependsOn gone":   func(s *helmv2.HelmReleaseSpec) { s.DependsOn = nil },
		"kubeConfig":       func(s *helmv2.HelmReleaseSpec) { s.KubeConfig.SecretRef.Name = "mine" },
		"driftDetection":   func(s *helmv2.HelmReleaseSpec) { s.DriftDetection.Mode = helmv2.DriftDetectionDisabled },
		"healthCheckExprs": func(s *helmv2.HelmReleaseSpec) { s.HealthCheckExprs[0].Current = "true" },
		"healthCheck added": func(s *helmv2.HelmReleaseSpec) {
			s.HealthCheckExprs = append(s.HealthCheckExprs, kustomize.CustomHealthCheck{APIVersion: "v1", Kind: "Secret"})
		},
		"postRenderers": func(s *helmv2.HelmReleaseSpec) { s.PostRenderers = nil },
		"test":          func(s *helmv2.HelmReleaseSpec) { s.Test.Enable = false },
		"rollback":      func(s *helmv2.HelmReleaseSpec) { s.Rollback = nil },
		"uninstall":     func(s *helmv2.HelmReleaseSpec) { s.Uninstall.KeepHistory = false },
	}
	*hr.Spec.MaxHistory = 3
	for what, edit := range edits {
		edited := hr.DeepCopy()
		edit(&edited.Spec)
		fixed := edited.DeepCopy()
		m.applyDesired(tg, obj, fixed, values)
		if releaseEqual(edited, fixed) {
			t.Errorf("%s: edit not noticed", what)
		}
		if !releaseEqual(hr, fixed) {
			t.Errorf("%s: not restored", what)
		}
	}

	// What the API server defaults inside a setting is not an edit.
	stored := hr.DeepCopy()
	bg := "background"
	stored.Spec.Uninstall.DeletionPropagation = &bg
	again := stored.DeepCopy()
	m.applyDesired(tg, obj, again, values)
	if !releaseEqual(stored, again) {
		t.Errorf("a server default inside uninstall was taken for an edit")
	}
}

// A user's dependencies are added after the administrator's; once the last
// one is removed, dependsOn is cleared on the HelmRelease chartkind set it on,
// and left alone on one it never set.
func TestDependsOnForwarding(t *testing.T) {
	def := testDef("pg", "Postgres", "postgres")
	tg, obj := fieldsTarget(def)
	m := &Mirror{}
	values, _ := specValues(obj)

	tg.deps = &dependencies{user: []helmv2.DependencyReference{{Name: "redis-cache"}}}
	hr := &helmv2.HelmRelease{}
	m.applyDesired(tg, obj, hr, values)
	if len(hr.Spec.DependsOn) != 1 || hr.Spec.DependsOn[0].Name != "redis-cache" || hr.Annotations[AnnotationDependsOnForwarded] != "true" {
		t.Fatalf("user dependency not forwarded: %+v %v", hr.Spec.DependsOn, hr.Annotations)
	}
	tg.deps = &dependencies{}
	m.applyDesired(tg, obj, hr, values)
	if len(hr.Spec.DependsOn) != 0 || hr.Annotations[AnnotationDependsOnForwarded] != "" {
		t.Fatalf("removed dependency kept: %+v %v", hr.Spec.DependsOn, hr.Annotations)
	}
	own := &helmv2.HelmRelease{Spec: helmv2.HelmReleaseSpec{DependsOn: []helmv2.DependencyReference{{Name: "theirs"}}}}
	m.applyDesired(tg, obj, own, values)
	if len(own.Spec.DependsOn) != 1 {
		t.Fatalf("dependsOn of a HelmRelease chartkind never set was changed: %+v", own.Spec.DependsOn)
	}

	def.Spec.Release.DependsOn = []helmv2.DependencyReference{{Name: "op", Namespace: "operators"}}
	tg.deps = &dependencies{user: []helmv2.DependencyReference{{Name: "redis-cache"}, {Name: "op", Namespace: "operators"}}}
	m.applyDesired(tg, obj, hr, values)
	want := []helmv2.DependencyReference{{Name: "op", Namespace: "operators"}, {Name: "redis-cache"}}
	if !reflect.DeepEqual(hr.Spec.DependsOn, want) {
		t.Fatalf("dependsOn = %+v, want %+v", hr.Spec.DependsOn, want)
	}
}

func TestResolveDependencyRefs(t *testing.T) {
	pg := testDef("pg", "Postgres", "postgres")
	redis := testDef("redis", "Redis", "redis")
	redis2 := testDef("redis-b", "Redis", "redis")
	redis2.Spec.Application.Group = "cache.example.com"
	self := depNode{def: pg, name: "app"}

	got, problem := resolveRefs(self, parseDependsOn(" db , Redis/cache,redis/other "), []*v1alpha1.ApplicationDefinition{pg, redis})
	if problem != "" {
		t.Fatal(problem)
	}
	var labels []string
	for _, n := range got {
		labels = append(labels, n.label()+"@"+definition.Effective(n.def).ReleaseName(n.name))
	}
	want := []string{"Postgres db@postgres-db", "Redis cache@redis-cache", "Redis other@redis-other"}
	if !reflect.DeepEqual(labels, want) {
		t.Errorf("resolved %v, want %v", labels, want)
	}
	for ann, wantProblem := range map[string]string{
		"Mysql/x":     "no ApplicationDefinition serves kind Mysql (entry Mysql/x)",
		"Redis/":      "an entry has no object name (want name or Kind/name)",
		"Redis/cache": "kind Redis is served by several ApplicationDefinitions (redis, redis-b)",
	} {
		if _, p := resolveRefs(self, parseDependsOn(ann), []*v1alpha1.ApplicationDefinition{pg, redis, redis2}); p != wantProblem {
			t.Errorf("%q: problem %q, want %q", ann, p, wantProblem)
		}
	}
}

// Missing dependencies and cycles make Ready say so; waiting for a
// dependency leaves Ready to helm-controller.
func TestDependencyStatus(t *testing.T) {
	st := &objectStatus{}
	st.setCondition(metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: "DependencyNotReady", Message: "dependency 'db/redis-cache' is not ready"})
	dependencyStatus(&dependencies{condition: &metav1.Condition{Type: ConditionDependenciesReady, Status: metav1.ConditionFalse,
		Reason: ReasonDependencyNotReady, Message: "waiting for Redis cache (HelmRelease redis-cache) to be Ready"}}, st, st.deepCopy())
	if c := findCondition(st.Conditions, ConditionReady); c.Reason != "DependencyNotReady" {
		t.Errorf("waiting: Ready = %+v", c)
	}
	dependencyStatus(&dependencies{condition: &metav1.Condition{Type: ConditionDependenciesReady, Status: metav1.ConditionFalse,
		Reason: ReasonDependencyCycle, Message: "dependencies form a cycle: Redis a → Redis b → Redis a"}}, st, st.deepCopy())
	if c := findCondition(st.Conditions, ConditionReady); c.Reason != ReasonDependencyCycle || c.Status != metav1.ConditionFalse {
		t.Errorf("cycle: Ready = %+v", c)
	}
	if d := dependencyRecheckAfter(&dependencies{condition: &metav1.Condition{Status: metav1.ConditionFalse}}, 0); d != dependencyRecheck {
		t.Errorf("recheck while waiting = %s", d)
	}
	dependencyStatus(&dependencies{}, st, st.deepCopy())
	if findCondition(st.Conditions, ConditionDependenciesReady) != nil {
		t.Errorf("DependenciesReady kept without dependencies")
	}
}

// A remote cluster's kubeconfig is used only with what it holds itself:
// nothing that would make chartkind use credentials of its own machine.
func TestRemoteKubeconfigSelfContained(t *testing.T) {
	const base = `apiVersion: v1
kind: Config
current-context: tenant
clusters:
- name: tenant
  cluster:
    server: https://tenant.example.com
    %s
contexts:
- name: tenant
  context: {cluster: tenant, user: tenant}
users:
- name: tenant
  user:
    %s
`
	cases := map[string]struct{ cluster, user, want string }{
		"inline":        {"certificate-authority-data: Zm9v", "token: abc", ""},
		"token file":    {"", "tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token", "names credential files"},
		"client files":  {"", "client-certificate: /etc/cert.pem", "names credential files"},
		"exec":          {"", "exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}", "runs an exec plugin"},
		"auth provider": {"", "auth-provider: {name: gcp}", "uses an auth provider"},
		"CA file":       {"certificate-authority: /etc/ca.pem", "token: abc", "names a CA file"},
	}
	for name, c := range cases {
		_, err := remoteClientFor([]byte(fmt.Sprintf(base, c.cluster, c.user)))
		switch {
		case c.want == "" && err != nil && strings.Contains(err.Error(), "refused"):
			t.Errorf("%s: refused: %v", name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "kc"}, Data: map[string][]byte{"value.yaml": []byte("x")}}
	if b, err := kubeconfigData(sec, ""); err != nil || string(b) != "x" {
		t.Errorf("default key value.yaml: %q %v", b, err)
	}
	if _, err := kubeconfigData(sec, "other"); err == nil || !strings.Contains(err.Error(), `has no key "other"`) {
		t.Errorf("missing key: %v", err)
	}
}

// A dependency problem shown over a Ready HelmRelease writes nothing new on
// the next sync: Ready keeps its transition time.
func TestDependencyStatusStable(t *testing.T) {
	cycle := &dependencies{condition: &metav1.Condition{Type: ConditionDependenciesReady, Status: metav1.ConditionFalse,
		Reason: ReasonDependencyCycle, Message: "dependencies form a cycle: Redis a → Redis b → Redis a"}}
	sync := func(prev *objectStatus) *objectStatus {
		st := prev.deepCopy()
		st.setCondition(metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "InstallSucceeded",
			LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))})
		dependencyStatus(cycle, st, prev)
		return st
	}
	first := sync(&objectStatus{})
	time.Sleep(1100 * time.Millisecond) // transition times have a resolution of one second
	if second := sync(first); !second.equal(first) {
		a, _ := first.toUnstructured()
		b, _ := second.toUnstructured()
		t.Errorf("status changed on an unchanged sync:\n%v\n%v", a, b)
	}
}
