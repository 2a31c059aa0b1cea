package chart

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/internal/testenv"
)

// variation is one install of the chart: a release in its own namespace.
type variation struct {
	name   string
	values string // YAML
	// wantInstallError, when set, is part of the message of a refused install.
	wantInstallError string
	// check asserts what is specific to the variation.
	check func(t *testing.T, r *rendered)
}

// Every variation but "default" names its own webhook configuration and
// leaves the CRD to "default": both are cluster-scoped and shared.
var variations = []variation{
	{name: "default", values: `{}`, check: checkDefault},
	{name: "replicas", values: `
replicas: 2
leaderElection: {namespace: chart-lease}
crds: {install: false}
webhook: {configurationName: chartkind-replicas}
`, check: checkReplicas},
	{name: "monitor", values: `
crds: {install: false}
webhook: {configurationName: chartkind-monitor}
metrics:
  port: 9090
  serviceMonitor: {enabled: true, interval: 15s, labels: {release: prometheus}}
`, check: checkServiceMonitor},
	{name: "certmanager", values: `
crds: {install: false}
webhook:
  configurationName: chartkind-certmanager
  failurePolicy: Ignore
  port: 10250
  certManager: {enabled: true}
`, check: checkCertManager},
	{name: "minimal", values: `
crds: {install: false}
webhook: {enabled: false}
metrics: {enabled: false}
leaderElection: {enabled: false}
rbac: {extraGroups: [db.example.com]}
charts: {volume: {configMap: {name: charts}}, mountPath: /srv/charts}
extraArgs: [--log-level=debug]
`, check: checkMinimal},
	{name: "multitenant", values: `
crds: {install: false}
webhook: {configurationName: chartkind-multitenant}
multiTenant: {enabled: true}
`, check: checkMultiTenant},
	{name: "multitenant-require", values: `
crds: {install: false}
webhook: {configurationName: chartkind-multitenant-require}
multiTenant: {enabled: true, defaultServiceAccount: "", noCrossNamespaceRefs: false}
`, check: checkMultiTenantRequire},
	{name: "invalid", values: `
crds: {install: false}
webhook: {failurePolicy: Sometimes}
`, wantInstallError: "failurePolicy"},
}

// rendered is what one release of the chart put on the API server.
type rendered struct {
	namespace, release string
	objects            []*unstructured.Unstructured // from the release's manifest
	deployment         *appsv1.Deployment           // as the API server stored it
	args               map[string]string            // operator flags: name → value ("" for booleans)
}

func (r *rendered) find(kind, name string) *unstructured.Unstructured {
	for _, o := range r.objects {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	return nil
}

func (r *rendered) count(kind string) int {
	n := 0
	for _, o := range r.objects {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

// into converts o to a typed object.
func into[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	if o == nil {
		t.Fatalf("missing %T", new(T))
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
		t.Fatalf("converting %s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return out
}

// TestChartInstalls installs the chart with each variation of the values
// through helm-controller, on a kube-apiserver with stand-ins for the
// ServiceMonitor and cert-manager CRDs. Every object of every release must be
// accepted by the API server; the operator's Deployment must run non-root on
// a read-only file system with no capabilities, probe the health port, pass
// only flags the operator knows, and get exactly the RBAC config/rbac
// declares.
func TestChartInstalls(t *testing.T) {
	begin := time.Now()
	env := testenv.Start(t, testenv.Options{Flux: true, CRDDirectoryPaths: []string{"testdata/crds"}})
	ctx := context.Background()
	c := env.Client
	repoURL := env.ServeCharts(t, filepath.Join(env.RootDir, "charts"))

	src := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "chart-source"}}
	if err := c.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	repo := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "local", Namespace: src.Name},
		Spec:       sourcev1.HelmRepositorySpec{URL: repoURL, Interval: metav1.Duration{Duration: time.Hour}},
	}
	if err := c.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	env.WaitForReady(t, repo, 2*time.Minute)

	// The "replicas" variation keeps its Lease in a namespace of its own.
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "chart-lease"}}); err != nil {
		t.Fatal(err)
	}
	flags := operatorFlags(t)
	results := make([]*rendered, len(variations))
	var wg sync.WaitGroup
	for i, v := range variations {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "chart-" + v.name}}
		if err := c.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		hr := &helmv2.HelmRelease{
			ObjectMeta: metav1.ObjectMeta{Name: "chartkind", Namespace: ns.Name},
			Spec: helmv2.HelmReleaseSpec{
				Interval: metav1.Duration{Duration: time.Hour},
				// The default release name is <namespace>-<name>: name the
				// default variation's release "chartkind", as in the docs.
				ReleaseName: releaseName(v),
				Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{
					Chart: "chartkind", Version: "*",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: repo.Name, Namespace: repo.Namespace},
				}},
				// No kubelet: the Deployment never becomes available.
				Install: &helmv2.Install{DisableWait: true, DisableWaitForJobs: true},
				Values:  jsonValues(t, parseValues(t, v.values)),
			},
		}
		if err := c.Create(ctx, hr); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v.wantInstallError != "" {
				results[i] = nil
				waitInstallFailed(t, c, hr, v.wantInstallError)
				return
			}
			if err := waitReleaseReady(c, hr); err != nil {
				t.Errorf("variation %s: %v", v.name, err)
				return
			}
			r, err := readRelease(ctx, c, ns.Name, releaseName(v))
			if err != nil {
				t.Errorf("variation %s: %v", v.name, err)
				return
			}
			results[i] = r
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d variations installed in %s (including control plane start)", len(variations), time.Since(begin).Round(time.Millisecond))

	for i, v := range variations {
		r := results[i]
		if r == nil {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			t.Logf("%d objects rendered: %s", len(r.objects), kinds(r.objects))
			checkAccepted(t, c, r)
			checkDeployment(t, r, flags)
			checkRBAC(t, env.RootDir, r, parseValues(t, v.values))
			v.check(t, r)
		})
	}
}

func releaseName(v variation) string {
	if v.name == "default" {
		return "chartkind"
	}
	return "ck-" + v.name
}

func jsonValues(t *testing.T, m map[string]any) *apiextensionsv1.JSON {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &apiextensionsv1.JSON{Raw: b}
}

// waitReleaseReady waits until helm-controller has installed the release.
func waitReleaseReady(c client.Client, hr *helmv2.HelmRelease) error {
	return testenv.Poll(context.Background(), 3*time.Minute, func(ctx context.Context) error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(hr), hr); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(hr.Status.Conditions, "Ready")
		if cond == nil || cond.Status != metav1.ConditionTrue || hr.Status.ObservedGeneration != hr.Generation {
			return fmt.Errorf("HelmRelease %s/%s not Ready: %+v", hr.Namespace, hr.Name, cond)
		}
		return nil
	})
}

// waitInstallFailed waits until helm-controller reports that the install
// failed with a message containing want, and checks nothing was installed.
func waitInstallFailed(t *testing.T, c client.Client, hr *helmv2.HelmRelease, want string) {
	err := testenv.Poll(context.Background(), 3*time.Minute, func(ctx context.Context) error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(hr), hr); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(hr.Status.Conditions, "Ready")
		if cond == nil || cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, want) {
			return fmt.Errorf("want Ready=False mentioning %q, have %+v", want, cond)
		}
		return nil
	})
	if err != nil {
		t.Errorf("invalid values: %v", err)
		return
	}
	var deps appsv1.DeploymentList
	if err := c.List(context.Background(), &deps, client.InNamespace(hr.Namespace)); err != nil || len(deps.Items) != 0 {
		t.Errorf("invalid values installed %d Deployments (%v)", len(deps.Items), err)
	}
}

// readRelease decodes the release helm-controller stored (Helm's Secret
// storage: base64 of gzipped JSON) and reads the Deployment back.
func readRelease(ctx context.Context, c client.Client, ns, name string) (*rendered, error) {
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets, client.InNamespace(ns), client.MatchingLabels{"owner": "helm", "name": name, "status": "deployed"}); err != nil {
		return nil, err
	}
	if len(secrets.Items) != 1 {
		return nil, fmt.Errorf("%d deployed release Secrets for %s/%s", len(secrets.Items), ns, name)
	}
	gz, err := base64.StdEncoding.DecodeString(string(secrets.Items[0].Data["release"]))
	if err != nil {
		return nil, fmt.Errorf("decoding release: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("decompressing release: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var rel struct {
		Manifest string `json:"manifest"`
	}
	if err := json.Unmarshal(raw, &rel); err != nil {
		return nil, fmt.Errorf("reading release: %w", err)
	}
	r := &rendered{namespace: ns, release: name}
	for _, doc := range releaseutil.SplitManifests(rel.Manifest) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			return nil, fmt.Errorf("manifest document: %w\n%s", err, doc)
		}
		if len(u.Object) > 0 {
			r.objects = append(r.objects, u)
		}
	}
	dep := r.find("Deployment", "")
	if dep == nil {
		return nil, fmt.Errorf("no Deployment in the manifest of %s/%s", ns, name)
	}
	r.deployment = &appsv1.Deployment{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: dep.GetName()}, r.deployment); err != nil {
		return nil, err
	}
	r.args = map[string]string{}
	for _, a := range r.deployment.Spec.Template.Spec.Containers[0].Args[1:] {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		r.args[name] = value
	}
	return r, nil
}

func kinds(objs []*unstructured.Unstructured) string {
	n := map[string]int{}
	for _, o := range objs {
		n[o.GetKind()]++
	}
	var out []string
	for k, c := range n {
		out = append(out, fmt.Sprintf("%d %s", c, k))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// checkAccepted: every object of the manifest is on the API server.
func checkAccepted(t *testing.T, c client.Client, r *rendered) {
	t.Helper()
	for _, o := range r.objects {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(o.GroupVersionKind())
		ns := o.GetNamespace()
		if ns == "" && !clusterScoped(o.GetKind()) {
			ns = r.namespace
		}
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: o.GetName()}, live); err != nil {
			t.Errorf("%s %s/%s not on the API server: %v", o.GetKind(), ns, o.GetName(), err)
		}
	}
}

func clusterScoped(kind string) bool {
	switch kind {
	case "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration":
		return true
	}
	return false
}

// checkDeployment: security settings, probes, resources and flags.
func checkDeployment(t *testing.T, r *rendered, known map[string]bool) {
	t.Helper()
	pod := r.deployment.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	psc, sc := pod.SecurityContext, ctr.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", psc)
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
		sc.Privileged != nil && *sc.Privileged || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext %+v", sc)
	}
	tmp := false
	for _, m := range ctr.VolumeMounts {
		if m.MountPath == "/tmp" {
			for _, v := range pod.Volumes {
				tmp = tmp || v.Name == m.Name && v.EmptyDir != nil
			}
		}
	}
	if !tmp {
		t.Errorf("no emptyDir at /tmp under the read-only root file system: %+v", ctr.VolumeMounts)
	}
	if ctr.Image != "ghcr.io/chartkind/chartkind:0.1.0" || ctr.Args[0] != "operator" {
		t.Errorf("image %q args %v", ctr.Image, ctr.Args)
	}
	health := -1
	for _, p := range ctr.Ports {
		if p.Name == "health" {
			health = int(p.ContainerPort)
		}
	}
	if want := ":" + fmt.Sprint(health); r.args["health-probe-bind-address"] != want {
		t.Errorf("--health-probe-bind-address=%q, health port %d", r.args["health-probe-bind-address"], health)
	}
	for probe, path := range map[*corev1.Probe]string{ctr.LivenessProbe: "/healthz", ctr.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != "health" {
			t.Errorf("probe for %s: %+v", path, probe)
		}
	}
	res := ctr.Resources
	if res.Requests.Cpu().IsZero() || res.Requests.Memory().IsZero() || res.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", res)
	}
	if sa := r.find("ServiceAccount", ""); sa == nil || pod.ServiceAccountName != sa.GetName() {
		t.Errorf("serviceAccountName %q, rendered ServiceAccount %v", pod.ServiceAccountName, sa)
	}
	for name := range r.args {
		if !known[name] {
			t.Errorf("the chart passes --%s, which `chartkind operator` does not know", name)
		}
	}
	for _, name := range []string{"metrics-bind-address", "health-probe-bind-address", "max-concurrent-reconciles", "kube-api-qps", "kube-api-burst", "log-level", "log-format"} {
		if _, ok := r.args[name]; !ok {
			t.Errorf("--%s not passed (args %v)", name, ctr.Args)
		}
	}
}

// checkRBAC: the ClusterRole grants exactly config/rbac/role.yaml's rules
// (with rbac.extraGroups added where apps.chartkind.io is), bound to the
// operator's ServiceAccount; the leader-election Role grants the Lease.
func checkRBAC(t *testing.T, root string, r *rendered, values map[string]any) {
	t.Helper()
	objs, err := readFile(filepath.Join(root, "config/rbac/role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want, wantNamespaced []rbacv1.PolicyRule
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole":
			want = append(want, into[rbacv1.ClusterRole](t, o).Rules...)
		case "Role":
			wantNamespaced = append(wantNamespaced, into[rbacv1.Role](t, o).Rules...)
		}
	}
	// The namespaced Role (the webhook certificate's Secret) is there only
	// when the operator manages that certificate.
	_, webhookOn := r.args["webhook"]
	_, certDir := r.args["webhook-cert-dir"]
	if nsRole := r.find("Role", r.find("ClusterRole", "").GetName()); (nsRole != nil) != (webhookOn && !certDir && len(wantNamespaced) > 0) {
		t.Errorf("namespaced Role %v with webhook %v and cert dir %v", nsRole, webhookOn, certDir)
	} else if nsRole != nil {
		got := into[rbacv1.Role](t, nsRole)
		if got.Namespace != r.namespace || !reflect.DeepEqual(got.Rules, wantNamespaced) {
			t.Errorf("namespaced Role in %s rules %+v, want %+v", got.Namespace, got.Rules, wantNamespaced)
		}
		rb := r.find("RoleBinding", got.Name)
		if rb == nil || into[rbacv1.RoleBinding](t, rb).Subjects[0].Name != r.deployment.Spec.Template.Spec.ServiceAccountName {
			t.Errorf("namespaced Role %s not bound to the operator: %v", got.Name, rb)
		}
	}
	var extra []string
	if rb, ok := values["rbac"].(map[string]any); ok {
		for _, g := range rb["extraGroups"].([]any) {
			extra = append(extra, g.(string))
		}
	}
	for i := range want {
		for _, g := range want[i].APIGroups {
			if g == "apps.chartkind.io" {
				want[i].APIGroups = append(want[i].APIGroups, extra...)
				break
			}
		}
	}
	if n := r.count("ClusterRole"); n != 1 {
		t.Fatalf("%d ClusterRoles", n)
	}
	role := into[rbacv1.ClusterRole](t, r.find("ClusterRole", ""))
	if !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("ClusterRole rules\n%+v\nwant (config/rbac/role.yaml)\n%+v", role.Rules, want)
	}
	sa := r.deployment.Spec.Template.Spec.ServiceAccountName
	crb := into[rbacv1.ClusterRoleBinding](t, r.find("ClusterRoleBinding", ""))
	if crb.RoleRef.Name != role.Name || len(crb.Subjects) != 1 || crb.Subjects[0].Name != sa || crb.Subjects[0].Namespace != r.namespace {
		t.Errorf("ClusterRoleBinding %+v", crb)
	}
	_, elect := r.args["leader-elect"]
	le := r.find("Role", role.Name+"-leader-election")
	if elect != (le != nil) {
		t.Fatalf("--leader-elect %v but leader-election Role %v", elect, le)
	}
	if le != nil {
		lr := into[rbacv1.Role](t, le)
		leaseNS := r.args["leader-election-namespace"]
		if leaseNS == "" {
			leaseNS = r.namespace
		}
		if lr.Namespace != leaseNS || len(lr.Rules) == 0 || lr.Rules[0].Resources[0] != "leases" ||
			!reflect.DeepEqual(lr.Rules[0].Verbs, []string{"get", "create", "update"}) {
			t.Errorf("leader-election Role %+v", lr)
		}
	}
}

func readFile(path string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, doc := range releaseutil.SplitManifests(string(b)) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			return nil, err
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
	return out, nil
}
