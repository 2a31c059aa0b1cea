package insight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

func TestInventory(t *testing.T) {
	hr := &helmv2.HelmRelease{}
	hr.Status.Inventory = &helmv2.ResourceInventory{Entries: []helmv2.ResourceRef{
		{ID: "shop_web_apps_Deployment", Version: "v1"},
		{ID: "shop_web__Service", Version: "v1"},
		{ID: "_web-admin_rbac.authorization.k8s.io_ClusterRole", Version: "v1"},
		{ID: "_system__controller__web_rbac.authorization.k8s.io_ClusterRole", Version: "v1"},
		{ID: "_shop__Namespace", Version: "v1"},
		{ID: "shop_web_networking.k8s.io_Ingress", Version: "networking.k8s.io/v1"},
		{ID: "shop_web_apps_Deployment", Version: "v1"}, // duplicate
		{ID: "garbage", Version: "v1"},
		{ID: "a_b_c", Version: "v1"},
		{ID: "shop_a_b_c_Kind", Version: "v1"},
		{ID: "shop_web__ConfigMap", Version: ""},
	}}
	got := Inventory(hr)
	want := []Ref{
		{Namespace: "", Name: "system:controller:web", Group: "rbac.authorization.k8s.io", Kind: "ClusterRole", Version: "v1"},
		{Namespace: "", Name: "web-admin", Group: "rbac.authorization.k8s.io", Kind: "ClusterRole", Version: "v1"},
		{Namespace: "shop", Name: "web", Group: "apps", Kind: "Deployment", Version: "v1"},
		{Namespace: "shop", Name: "web", Group: "networking.k8s.io", Kind: "Ingress", Version: "v1"},
		{Namespace: "", Name: "shop", Group: "", Kind: "Namespace", Version: "v1"},
		{Namespace: "shop", Name: "web", Group: "", Kind: "Service", Version: "v1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Inventory:\n got %+v\nwant %+v", got, want)
	}
	if s := want[0].String(); s != "ClusterRole system:controller:web" {
		t.Errorf("cluster-scoped String = %q", s)
	}
	if s := want[2].String(); s != "Deployment shop/web" {
		t.Errorf("String = %q", s)
	}
	if Inventory(&helmv2.HelmRelease{}) != nil || Inventory(nil) != nil {
		t.Error("no inventory must give nil")
	}
}

func services() []client.Object {
	return []client.Object{
		&corev1.Service{ObjectMeta: om("api"), Spec: corev1.ServiceSpec{
			ClusterIP: "10.0.0.10",
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9090)},
			},
		}},
		&corev1.Service{ObjectMeta: om("node"), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, ClusterIP: "10.0.0.11",
			Ports: []corev1.ServicePort{{Port: 8080, NodePort: 30080, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(80)}},
		}},
		&corev1.Service{ObjectMeta: om("lb"), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.0.0.12", ExternalIPs: []string{"198.51.100.7"},
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, NodePort: 31443, TargetPort: intstr.FromInt32(8443)}},
		}, Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{IP: "203.0.113.5"}, {Hostname: "lb.example.com"},
		}}}},
		&corev1.Service{ObjectMeta: om("db-headless"), Spec: corev1.ServiceSpec{
			ClusterIP: "None", Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}},
		}},
	}
}

func TestAccessServices(t *testing.T) {
	objs := services()
	rep := observe(t, newClient(objs...), releaseOf(t, objs...), Options{})
	want := []Service{
		{Name: "api", Namespace: ns, Type: "ClusterIP", ClusterIP: "10.0.0.10", DNS: "api.shop.svc", Ports: []Port{
			{Name: "http", Port: 80, Protocol: "TCP", TargetPort: "http"},
			{Name: "metrics", Port: 9090, Protocol: "TCP", TargetPort: "9090"},
		}},
		{Name: "db-headless", Namespace: ns, Type: "ClusterIP", ClusterIP: "None", DNS: "db-headless.shop.svc", Ports: []Port{
			{Name: "pg", Port: 5432, Protocol: "TCP"},
		}},
		{Name: "lb", Namespace: ns, Type: "LoadBalancer", ClusterIP: "10.0.0.12", DNS: "lb.shop.svc",
			Ports:    []Port{{Name: "https", Port: 443, Protocol: "TCP", NodePort: 31443, TargetPort: "8443"}},
			External: []string{"198.51.100.7", "203.0.113.5", "lb.example.com"}},
		{Name: "node", Namespace: ns, Type: "NodePort", ClusterIP: "10.0.0.11", DNS: "node.shop.svc", Ports: []Port{
			{Port: 8080, Protocol: "UDP", NodePort: 30080, TargetPort: "80"},
		}},
	}
	if !reflect.DeepEqual(rep.Access.Services, want) {
		t.Fatalf("Services:\n got %+v\nwant %+v", rep.Access.Services, want)
	}
	if rep.Access.Endpoint != "198.51.100.7:443" {
		t.Errorf("Endpoint = %q, want the first external address of the LoadBalancer", rep.Access.Endpoint)
	}
	if rep.Health.Status != StatusCurrent || len(rep.Health.Problems) != 0 || rep.Health.Checked != 4 {
		t.Errorf("Health = %+v", rep.Health)
	}
}

func TestEndpointChoice(t *testing.T) {
	api := services()[0]
	ing := &networkingv1.Ingress{ObjectMeta: om("web"), Spec: networkingv1.IngressSpec{
		Rules: []networkingv1.IngressRule{{Host: "shop.example.com"}},
	}}
	for _, tc := range []struct {
		name string
		objs []client.Object
		want string
	}{
		{"ingress before cluster DNS", []client.Object{api, ing}, "http://shop.example.com/"},
		{"cluster DNS of the first Service", []client.Object{services()[1], api}, "api.shop.svc:80"},
		{"service without ports", []client.Object{&corev1.Service{ObjectMeta: om("bare")}}, "bare.shop.svc"},
		{"nothing to connect to", []client.Object{&corev1.ConfigMap{ObjectMeta: om("cm")}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := observe(t, newClient(tc.objs...), releaseOf(t, tc.objs...), Options{})
			if rep.Access.Endpoint != tc.want {
				t.Errorf("Endpoint = %q, want %q", rep.Access.Endpoint, tc.want)
			}
		})
	}
}

func TestIngressURLs(t *testing.T) {
	prefix := networkingv1.PathTypePrefix
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}}
	paths := func(ps ...string) *networkingv1.HTTPIngressRuleValue {
		v := &networkingv1.HTTPIngressRuleValue{}
		for _, p := range ps {
			v.Paths = append(v.Paths, networkingv1.HTTPIngressPath{Path: p, PathType: &prefix, Backend: backend})
		}
		return v
	}
	objs := []client.Object{
		&networkingv1.Ingress{ObjectMeta: om("web"), Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("nginx"),
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com", "*.apps.example.com"}, SecretName: "tls"}},
			Rules: []networkingv1.IngressRule{
				{Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: paths("/", "/api")}},
				{Host: "admin.apps.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: paths("/admin")}},
				{Host: "plain.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: paths("")}},
				{Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: paths("/api")}}, // duplicate
			},
		}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "legacy",
			Annotations: map[string]string{"kubernetes.io/ingress.class": "traefik"}},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{IngressRuleValue: networkingv1.IngressRuleValue{HTTP: paths("/x")}}}},
			Status: networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{
				Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "203.0.113.9"}}}},
		},
		&networkingv1.Ingress{ObjectMeta: om("default-only"), Spec: networkingv1.IngressSpec{DefaultBackend: &backend}},
	}
	rep := observe(t, newClient(objs...), releaseOf(t, objs...), Options{})
	want := []Ingress{
		{Name: "default-only", Namespace: ns},
		{Name: "legacy", Namespace: ns, Class: "traefik", URLs: []string{"http://203.0.113.9/x"}},
		{Name: "web", Namespace: ns, Class: "nginx", URLs: []string{
			"https://shop.example.com/", "https://shop.example.com/api", "https://admin.apps.example.com/admin", "http://plain.example.com/",
		}},
	}
	if !reflect.DeepEqual(rep.Access.Ingresses, want) {
		t.Fatalf("Ingresses:\n got %+v\nwant %+v", rep.Access.Ingresses, want)
	}
	if rep.Access.Endpoint != "http://203.0.113.9/x" {
		t.Errorf("Endpoint = %q", rep.Access.Endpoint)
	}
}

func TestSecretKeysNeverValues(t *testing.T) {
	sec := &corev1.Secret{ObjectMeta: om("db"), Type: corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"password": []byte("hunter2-value"), "username": []byte("admin-value")},
		StringData: map[string]string{"url": "postgres://secret-value"},
	}
	objs := []client.Object{sec}
	rep := observe(t, newClient(objs...), releaseOf(t, objs...), Options{})
	if len(rep.Access.Secrets) != 1 {
		t.Fatalf("Secrets = %+v", rep.Access.Secrets)
	}
	got := rep.Access.Secrets[0]
	if got.Name != "db" || got.Type != "Opaque" || !slices.IsSorted(got.Keys) ||
		!slices.Contains(got.Keys, "password") || !slices.Contains(got.Keys, "username") {
		t.Errorf("Secret = %+v", got)
	}
	b, _ := json.Marshal(rep)
	for _, v := range []string{"hunter2", "admin-value", "secret-value", "aHVudGVy"} {
		if strings.Contains(string(b), v) {
			t.Errorf("report contains a secret value %q: %s", v, b)
		}
	}
	// stringData keys count too (as in a manifest that was never stored).
	u := secret(mustUnstructured(t, sec))
	if want := []string{"password", "url", "username"}; !reflect.DeepEqual(u.Keys, want) {
		t.Errorf("Keys = %v, want %v", u.Keys, want)
	}
}

func TestAccessRules(t *testing.T) {
	objs := append(services(),
		&corev1.Secret{ObjectMeta: om("db", "expose", "yes"), Data: map[string][]byte{"k": nil}},
		&corev1.Secret{ObjectMeta: om("internal"), Data: map[string][]byte{"k": nil}},
		&networkingv1.Ingress{ObjectMeta: om("web")},
	)
	rules := []v1alpha1.AccessRule{
		{Kind: "Service", Name: "lb"},
		{Kind: "Secret", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"expose": "yes"}}},
	}
	rep := observe(t, newClient(objs...), releaseOf(t, objs...), Options{Rules: rules})
	var names []string
	for _, s := range rep.Access.Services {
		names = append(names, "svc/"+s.Name)
	}
	for _, s := range rep.Access.Secrets {
		names = append(names, "secret/"+s.Name)
	}
	if want := []string{"svc/lb", "secret/db"}; !reflect.DeepEqual(names, want) || len(rep.Access.Ingresses) != 0 {
		t.Errorf("selected %v (ingresses %v), want %v", names, rep.Access.Ingresses, want)
	}

	// Without a Secret rule, Secrets are not read at all (their health is
	// nothing to wait for).
	c := &counter{Reader: newClient(objs...)}
	observe(t, c, releaseOf(t, objs...), Options{Rules: rules[:1]})
	for _, call := range c.calls {
		if strings.HasSuffix(call, " shop/db") {
			t.Errorf("Secret read although no rule shows Secrets: %s", call)
		}
	}

	if _, err := Observe(context.Background(), newClient(), releaseOf(t), Options{Rules: []v1alpha1.AccessRule{
		{Kind: "Secret", Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}},
	}}); err == nil {
		t.Error("invalid selector accepted")
	}
}

func TestHealthCurrent(t *testing.T) {
	objs := []client.Object{
		deployment("web", 2, 2),
		statefulSet("db", 1, 1),
		services()[0],
		&corev1.ConfigMap{ObjectMeta: om("conf")},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "web-admin"}},
	}
	c := &counter{Reader: newClient(objs...)}
	rep := observe(t, c, releaseOf(t, objs...), Options{})
	// The ConfigMap and the ClusterRole are Current once they exist: not read.
	if rep.Health.Status != StatusCurrent || len(rep.Health.Problems) != 0 || rep.Health.Checked != 3 {
		t.Fatalf("Health = %+v", rep.Health)
	}
	if m := rep.Health.Message(); m != "all 3 objects of the release are Current" {
		t.Errorf("Message = %q", m)
	}
	if len(c.calls) != 3 {
		t.Errorf("calls = %v, want one Get per object read and no pod List", c.calls)
	}
}

const insufficient = "0/1 nodes are available: 1 Insufficient ephemeral-storage. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."

func TestUnschedulableDeployment(t *testing.T) {
	objs := []client.Object{deployment("nginx-web", 2, 0)}
	cl := newClient(append(objs,
		pod("nginx-web", "nginx-web-7f9c", unschedulable(insufficient)),
		pod("nginx-web", "nginx-web-8a1d", unschedulable(insufficient)),
		pod("other", "other-1", unschedulable(insufficient)),
	)...)
	c := &counter{Reader: cl}
	rep := observe(t, c, releaseOf(t, objs...), Options{})
	want := []string{
		"Deployment shop/nginx-web: 0/2 available",
		"Pod shop/nginx-web-7f9c: Unschedulable: 0/1 nodes are available: 1 Insufficient ephemeral-storage.",
		"Pod shop/nginx-web-8a1d: Unschedulable: 0/1 nodes are available: 1 Insufficient ephemeral-storage.",
	}
	if !reflect.DeepEqual(rep.Health.Problems, want) {
		t.Fatalf("Problems:\n%s\nwant:\n%s", joined(rep.Health.Problems), joined(want))
	}
	if rep.Health.Status != StatusInProgress {
		t.Errorf("Status = %s", rep.Health.Status)
	}
	if want := "Deployment shop/nginx-web: 0/2 available; Pod shop/nginx-web-7f9c: Unschedulable"; !strings.HasPrefix(rep.Health.Message(), want) {
		t.Errorf("Message = %q", rep.Health.Message())
	}
	if len(c.calls) != 2 || !strings.HasPrefix(c.calls[1], "list *v1.PodList") {
		t.Errorf("calls = %v, want a Get and one pod List", c.calls)
	}
}

func TestStatefulSetPendingClaim(t *testing.T) {
	objs := []client.Object{statefulSet("db", 1, 0)}
	p := pod("db", "db-0", unschedulable("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."))
	p.Spec.Volumes = []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-db-0"}}},
		{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
	}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: om("data-db-0"), Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}}
	rep := observe(t, newClient(append(objs, p, pvc)...), releaseOf(t, objs...), Options{})
	want := []string{
		"StatefulSet shop/db: 0/1 available",
		"PersistentVolumeClaim shop/data-db-0: Pending",
	}
	if !reflect.DeepEqual(rep.Health.Problems, want) {
		t.Fatalf("Problems:\n%s\nwant:\n%s", joined(rep.Health.Problems), joined(want))
	}

	// A Pending claim of a pod that the scheduler rejects for another reason:
	// both are named.
	p2 := p.DeepCopy()
	p2.Status.Conditions[0].Message = insufficient
	rep = observe(t, newClient(append(objs, p2, pvc)...), releaseOf(t, objs...), Options{})
	if !containsLine(rep.Health.Problems, "PersistentVolumeClaim shop/data-db-0: Pending") ||
		!containsLine(rep.Health.Problems, "Pod shop/db-0: Unschedulable: 0/1 nodes are available: 1 Insufficient ephemeral-storage.") {
		t.Errorf("Problems:\n%s", joined(rep.Health.Problems))
	}
}

func TestContainerReasons(t *testing.T) {
	crashed := &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}
	for _, tc := range []struct {
		name  string
		state func(*corev1.Pod)
		want  string
	}{
		{"CrashLoopBackOff", notReadyContainer(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container=app pod=web-abc_shop(1234)"}}, crashed, 7),
			"Pod shop/web-abc: CrashLoopBackOff: container app: exited with code 1 (Error)"},
		{"CrashLoopBackOff between back-offs", notReadyContainer(corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, crashed, 8),
			"Pod shop/web-abc: CrashLoopBackOff: container app: exited with code 1 (Error)"},
		{"ImagePullBackOff", notReadyContainer(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "ImagePullBackOff", Message: `Back-off pulling image "nginx:1.27"`}}, nil, 0),
			`Pod shop/web-abc: ImagePullBackOff: container app: cannot pull image "nginx:1.27"`},
		{"ErrImagePull reads like ImagePullBackOff", notReadyContainer(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "ErrImagePull", Message: "rpc error: code = NotFound desc = failed to pull and unpack image"}}, nil, 0),
			`Pod shop/web-abc: ImagePullBackOff: container app: cannot pull image "nginx:1.27"`},
		{"CreateContainerConfigError", notReadyContainer(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "CreateContainerConfigError", Message: "secret \"db\" not found"}}, nil, 0),
			`Pod shop/web-abc: CreateContainerConfigError: container app: secret "db" not found`},
		{"readiness probe failing", notReadyContainer(corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, nil, 0),
			"Pod shop/web-abc: ContainersNotReady: containers with unready status: [app]"},
		{"init container crash", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.Conditions[1].Status = corev1.ConditionFalse
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "migrate", State: corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}, LastTerminationState: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}}}}
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}
		}, "Pod shop/web-abc: Init:CrashLoopBackOff: container migrate: exited with code 2 (Error)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := []client.Object{deployment("web", 1, 0)}
			rep := observe(t, newClient(append(objs, pod("web", "web-abc", tc.state))...), releaseOf(t, objs...), Options{})
			want := []string{"Deployment shop/web: 0/1 available", tc.want}
			if !reflect.DeepEqual(rep.Health.Problems, want) {
				t.Errorf("Problems:\n%s\nwant:\n%s", joined(rep.Health.Problems), joined(want))
			}
		})
	}
}

func TestFailedJob(t *testing.T) {
	job := &batchv1.Job{ObjectMeta: om("migrate"),
		Spec:   batchv1.JobSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "migrate"}}},
		Status: batchv1.JobStatus{Failed: 1, Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}},
	}
	failed := pod("migrate", "migrate-x1", func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.Conditions[1].Status = corev1.ConditionFalse
		p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}
	})
	rep := observe(t, newClient(job, failed), releaseOf(t, job), Options{})
	want := []string{"Job shop/migrate: Job Failed. failed: 1/1", "Pod shop/migrate-x1: Error: container app: exited with code 3"}
	if !reflect.DeepEqual(rep.Health.Problems, want) || rep.Health.Status != StatusFailed {
		t.Errorf("Health %s, Problems:\n%s\nwant:\n%s", rep.Health.Status, joined(rep.Health.Problems), joined(want))
	}
}

func TestCaps(t *testing.T) {
	objs := []client.Object{deployment("web", 10, 0)}
	all := slices.Clone(objs)
	for i := range 10 {
		all = append(all, pod("web", fmt.Sprintf("web-%02d", i), unschedulable(insufficient)))
	}
	rep := observe(t, newClient(all...), releaseOf(t, objs...), Options{})
	if len(rep.Health.Problems) != 5 || rep.Health.Problems[4] != "Deployment shop/web: 7 more pods not ready" ||
		rep.Health.Problems[1] != "Pod shop/web-00: Unschedulable: 0/1 nodes are available: 1 Insufficient ephemeral-storage." {
		t.Errorf("pod lines not capped:\n%s", joined(rep.Health.Problems))
	}

	// MaxProblems, then "and N more"; missing objects are Failed.
	var missing []client.Object
	for i := range 15 {
		missing = append(missing, &corev1.PersistentVolumeClaim{ObjectMeta: om(fmt.Sprintf("gone-%02d", i))})
	}
	rep = observe(t, newClient(), releaseOf(t, missing...), Options{})
	if len(rep.Health.Problems) != 11 || rep.Health.Problems[0] != "PersistentVolumeClaim shop/gone-00: not found" ||
		rep.Health.Problems[10] != "and 5 more" || rep.Health.Status != StatusFailed || rep.Health.Checked != 0 {
		t.Errorf("Health = %s %d\n%s", rep.Health.Status, rep.Health.Checked, joined(rep.Health.Problems))
	}
	rep = observe(t, newClient(), releaseOf(t, missing...), Options{MaxProblems: 3})
	if len(rep.Health.Problems) != 4 || rep.Health.Problems[3] != "and 12 more" {
		t.Errorf("MaxProblems 3:\n%s", joined(rep.Health.Problems))
	}

	// Access lists are bounded too, and say so.
	var svcs []client.Object
	for i := range 40 {
		svc := &corev1.Service{ObjectMeta: om(fmt.Sprintf("svc-%02d", i))}
		for p := range 20 {
			svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Port: int32(1000 + p)})
		}
		svcs = append(svcs, svc)
	}
	rep = observe(t, newClient(svcs...), releaseOf(t, svcs...), Options{})
	if len(rep.Access.Services) != maxAccessItems || len(rep.Access.Services[0].Ports) != maxPorts ||
		!reflect.DeepEqual(rep.Access.Omitted, []string{"8 more Services not shown"}) || rep.Access.Endpoint != "svc-00.shop.svc:1000" {
		t.Errorf("Access: %d services, %d ports, omitted %q, endpoint %q", len(rep.Access.Services),
			len(rep.Access.Services[0].Ports), rep.Access.Omitted, rep.Access.Endpoint)
	}

	// Message stays under MaxMessage even with long lines.
	long := Health{Status: StatusFailed}
	for i := range 20 {
		long.Problems = append(long.Problems, fmt.Sprintf("Pod shop/p-%d: %s", i, strings.Repeat("é", 290)))
	}
	if m := long.Message(); len(m) > MaxMessage || !strings.HasSuffix(m, "…") || !utf8Valid(m) {
		t.Errorf("Message length %d, suffix %q", len(m), m[len(m)-5:])
	}
	if got := clean(strings.Repeat("word ", 200)); len(got) > maxLine {
		t.Errorf("clean kept %d bytes", len(got))
	}
}

func TestDeterministic(t *testing.T) {
	objs := append(services(), deployment("web", 3, 1), statefulSet("db", 1, 1),
		&corev1.Secret{ObjectMeta: om("db"), Data: map[string][]byte{"b": nil, "a": nil, "c": nil}},
		&networkingv1.Ingress{ObjectMeta: om("web"), Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "x.example.com"}}}},
	)
	all := append(slices.Clone(objs),
		pod("web", "web-c", unschedulable(insufficient)),
		pod("web", "web-a", notReadyContainer(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			&corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}, 3)),
		pod("web", "web-b", nil),
	)
	cl := newClient(all...)
	hr := releaseOf(t, objs...)
	first := observe(t, cl, hr, Options{})
	slices.Reverse(hr.Status.Inventory.Entries)
	second := observe(t, cl, hr, Options{})
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("reports differ:\n%+v\n%+v", first, second)
	}
	want := []string{
		"Deployment shop/web: 1/3 available",
		"Pod shop/web-a: CrashLoopBackOff: container app: exited with code 137 (OOMKilled)",
		"Pod shop/web-c: Unschedulable: 0/1 nodes are available: 1 Insufficient ephemeral-storage.",
	}
	if !reflect.DeepEqual(first.Health.Problems, want) {
		t.Errorf("Problems:\n%s\nwant:\n%s", joined(first.Health.Problems), joined(want))
	}
}

func TestForbiddenAndErrors(t *testing.T) {
	objs := append(services()[:1], &corev1.Secret{ObjectMeta: om("db")}, deployment("web", 1, 1))
	forbidSecrets := interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if gvk := obj.GetObjectKind().GroupVersionKind(); gvk.Kind == "Secret" {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, key.Name, errors.New("RBAC: denied"))
		}
		return c.Get(ctx, key, obj, opts...)
	}}
	cl := interceptor.NewClient(newClient(objs...), forbidSecrets)
	rep := observe(t, cl, releaseOf(t, objs...), Options{})
	if !reflect.DeepEqual(rep.Health.Problems, []string{"Secret shop/db: forbidden"}) || rep.Health.Status != StatusUnknown || rep.Health.Checked != 2 {
		t.Errorf("Health = %+v", rep.Health)
	}
	if len(rep.Access.Services) != 1 || !reflect.DeepEqual(rep.Access.Omitted, []string{"Secret shop/db: forbidden"}) {
		t.Errorf("Access = %+v", rep.Access)
	}

	unavailable := interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		return apierrors.NewServiceUnavailable("etcd is down")
	}}
	_, err := Observe(context.Background(), interceptor.NewClient(newClient(objs...), unavailable), releaseOf(t, objs...), Options{})
	if err == nil || !strings.Contains(err.Error(), "reading Deployment shop/web") || !apierrors.IsServiceUnavailable(err) {
		t.Errorf("err = %v, want a wrapped ServiceUnavailable", err)
	}

	rep = observe(t, newClient(), &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}, Options{})
	if rep.Health.Status != StatusUnknown || !reflect.DeepEqual(rep.Health.Problems, []string{"HelmRelease shop/web: no inventory recorded yet"}) {
		t.Errorf("no inventory: %+v", rep.Health)
	}
}

func TestRolloutKstatusMessage(t *testing.T) {
	// All replicas available but the rollout is not finished: kstatus's words.
	d := deployment("web", 2, 2)
	d.Status.UpdatedReplicas = 1
	d.Generation, d.Status.ObservedGeneration = 3, 3
	rep := observe(t, newClient(d), releaseOf(t, d), Options{})
	if !reflect.DeepEqual(rep.Health.Problems, []string{"Deployment shop/web: Updated: 1/2"}) {
		t.Errorf("Problems = %q", rep.Health.Problems)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
