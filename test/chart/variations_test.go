package chart

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/chartkind/chartkind/internal/webhook"
)

// webhookEntry returns the only webhook of the rendered configuration, which
// must carry no rules (the operator applies them) and no caBundle (the
// operator or cert-manager sets it).
//
// Its name and path are those the operator serves and applies to
// (internal/webhook), and the rest of the entry is what the operator would
// create itself: the operator only applies rules and caBundle to an entry
// that exists.
func webhookEntry(t *testing.T, r *rendered, name string, policy admissionregistrationv1.FailurePolicyType) admissionregistrationv1.ValidatingWebhook {
	t.Helper()
	vwc := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, r.find("ValidatingWebhookConfiguration", name))
	if len(vwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks in %s", len(vwc.Webhooks), name)
	}
	w := vwc.Webhooks[0]
	if len(w.Rules) != 0 || len(w.ClientConfig.CABundle) != 0 || w.ClientConfig.URL != nil {
		t.Errorf("webhook %s: rules %v caBundle %d bytes url %v: the chart must leave rules and caBundle to the operator", w.Name, w.Rules, len(w.ClientConfig.CABundle), w.ClientConfig.URL)
	}
	svc := w.ClientConfig.Service
	if svc == nil || svc.Namespace != r.namespace || svc.Port == nil || *svc.Port != 443 || svc.Path == nil || *svc.Path != webhook.Path {
		t.Fatalf("webhook clientConfig.service %+v, want path %s", svc, webhook.Path)
	}
	if w.Name != webhook.WebhookName || w.FailurePolicy == nil || *w.FailurePolicy != policy ||
		w.TimeoutSeconds == nil || *w.TimeoutSeconds != webhook.DefaultTimeoutSeconds ||
		w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone ||
		w.MatchPolicy == nil || *w.MatchPolicy != admissionregistrationv1.Equivalent ||
		!reflect.DeepEqual(w.MatchConditions, []admissionregistrationv1.MatchCondition{webhook.SpecChangedCondition}) {
		t.Errorf("webhook entry differs from the operator's (internal/webhook): %+v", w)
	}
	// The Service exists and forwards to the operator's webhook port.
	s := into[corev1.Service](t, r.find("Service", svc.Name))
	if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 443 || s.Spec.Ports[0].TargetPort.String() != "webhook" {
		t.Errorf("webhook Service ports %+v", s.Spec.Ports)
	}
	if !reflect.DeepEqual(s.Spec.Selector, r.deployment.Spec.Selector.MatchLabels) {
		t.Errorf("webhook Service selects %v, pods have %v", s.Spec.Selector, r.deployment.Spec.Selector.MatchLabels)
	}
	port := int32(0)
	for _, p := range r.deployment.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "webhook" {
			port = p.ContainerPort
		}
	}
	if r.args["webhook-port"] == "" || r.args["webhook-port"] != strconv.Itoa(int(port)) {
		t.Errorf("--webhook-port=%q, container port %d", r.args["webhook-port"], port)
	}
	return w
}

func checkDefault(t *testing.T, r *rendered) {
	checkNoProfile(t, r)
	if n := len(r.objects); n != 12 {
		t.Errorf("%d objects, want 12 (CRD, ServiceAccount, ClusterRole+Binding, leader-election and webhook-Secret Roles+Bindings, Deployment, metrics and webhook Services, webhook configuration)", n)
	}
	if *r.deployment.Spec.Replicas != 1 || r.deployment.Spec.Strategy.Type == "Recreate" {
		t.Errorf("replicas %d strategy %q", *r.deployment.Spec.Replicas, r.deployment.Spec.Strategy.Type)
	}
	if _, ok := r.args["leader-elect"]; !ok {
		t.Error("leader election is off by default")
	}
	crd := into[apiextensionsv1.CustomResourceDefinition](t, r.find("CustomResourceDefinition", "applicationdefinitions.chartkind.io"))
	if crd.Annotations["helm.sh/resource-policy"] != "keep" || crd.Spec.Group != "chartkind.io" || len(crd.Spec.Versions) == 0 {
		t.Errorf("CRD annotations %v group %s", crd.Annotations, crd.Spec.Group)
	}
	w := webhookEntry(t, r, "chartkind", admissionregistrationv1.Fail)
	if r.args["webhook-configuration"] != "chartkind" || r.args["webhook-failure-policy"] != "Fail" || r.args["webhook-port"] != "9443" {
		t.Errorf("webhook flags %v", r.args)
	}
	if _, ok := r.args["webhook"]; !ok {
		t.Error("--webhook not passed")
	}
	// Self-managed certificate: the operator writes the Secret and the caBundle.
	if r.args["webhook-secret"] != r.namespace+"/chartkind-webhook-tls" || r.args["webhook-service"] != r.namespace+"/"+w.ClientConfig.Service.Name {
		t.Errorf("--webhook-secret=%q --webhook-service=%q", r.args["webhook-secret"], r.args["webhook-service"])
	}
	if _, ok := r.args["webhook-cert-dir"]; ok {
		t.Error("--webhook-cert-dir passed although the operator manages the certificate")
	}
	if r.count("Certificate")+r.count("Issuer")+r.count("ServiceMonitor") != 0 {
		t.Errorf("optional objects rendered by default: %s", kinds(r.objects))
	}
	metrics := into[corev1.Service](t, r.find("Service", "chartkind-metrics"))
	if metrics.Spec.Ports[0].Port != 8080 || metrics.Spec.Ports[0].TargetPort.String() != "metrics" || r.args["metrics-bind-address"] != ":8080" {
		t.Errorf("metrics Service %+v, --metrics-bind-address=%q", metrics.Spec.Ports, r.args["metrics-bind-address"])
	}
}

func checkReplicas(t *testing.T, r *rendered) {
	if *r.deployment.Spec.Replicas != 2 {
		t.Errorf("replicas %d", *r.deployment.Spec.Replicas)
	}
	if _, ok := r.args["leader-elect"]; !ok || r.args["leader-election-namespace"] != "chart-lease" {
		t.Errorf("two replicas without leader election in chart-lease: %v", r.args)
	}
	if r.count("CustomResourceDefinition") != 0 {
		t.Error("crds.install=false still renders the CRD")
	}
}

func checkServiceMonitor(t *testing.T, r *rendered) {
	sm := r.find("ServiceMonitor", "")
	if sm == nil {
		t.Fatalf("no ServiceMonitor: %s", kinds(r.objects))
	}
	if sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels %v", sm.GetLabels())
	}
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" || eps[0].(map[string]any)["interval"] != "15s" {
		t.Errorf("ServiceMonitor endpoints %v", eps)
	}
	// The selector picks the metrics Service, and only it.
	var picked []string
	for _, o := range r.objects {
		if o.GetKind() != "Service" {
			continue
		}
		match := true
		for k, v := range sel {
			match = match && o.GetLabels()[k] == v
		}
		if match {
			picked = append(picked, o.GetName())
			svc := into[corev1.Service](t, o)
			if svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != 9090 {
				t.Errorf("metrics Service ports %+v", svc.Spec.Ports)
			}
		}
	}
	if len(picked) != 1 {
		t.Errorf("ServiceMonitor selector %v picks Services %v", sel, picked)
	}
	if r.args["metrics-bind-address"] != ":9090" {
		t.Errorf("--metrics-bind-address=%q", r.args["metrics-bind-address"])
	}
}

func checkCertManager(t *testing.T, r *rendered) {
	vwcObj := r.find("ValidatingWebhookConfiguration", "chartkind-certmanager")
	w := webhookEntry(t, r, "chartkind-certmanager", admissionregistrationv1.Ignore)
	cert := r.find("Certificate", "")
	issuer := r.find("Issuer", "")
	if cert == nil || issuer == nil {
		t.Fatalf("Certificate %v Issuer %v", cert, issuer)
	}
	if got, want := vwcObj.GetAnnotations()["cert-manager.io/inject-ca-from"], r.namespace+"/"+cert.GetName(); got != want {
		t.Errorf("inject-ca-from %q, want %q", got, want)
	}
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	issuerName, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
	wantDNS := w.ClientConfig.Service.Name + "." + r.namespace + ".svc"
	if len(dnsNames) == 0 || dnsNames[0] != wantDNS || issuerName != issuer.GetName() {
		t.Errorf("Certificate dnsNames %v issuer %q, want %s and %s", dnsNames, issuerName, wantDNS, issuer.GetName())
	}
	// The Secret cert-manager fills is mounted where --webhook-cert-dir points.
	dir := r.args["webhook-cert-dir"]
	mounted := false
	pod := r.deployment.Spec.Template.Spec
	for _, m := range pod.Containers[0].VolumeMounts {
		for _, v := range pod.Volumes {
			if m.Name == v.Name && v.Secret != nil && v.Secret.SecretName == secretName && m.MountPath == dir && m.ReadOnly {
				mounted = true
			}
		}
	}
	if dir == "" || !mounted {
		t.Errorf("Secret %s not mounted read-only at --webhook-cert-dir=%q", secretName, dir)
	}
	for _, f := range []string{"webhook-secret", "webhook-service"} {
		if _, ok := r.args[f]; ok {
			t.Errorf("--%s passed although cert-manager manages the certificate", f)
		}
	}
	if r.args["webhook-failure-policy"] != "Ignore" || r.args["webhook-port"] != "10250" {
		t.Errorf("webhook flags %v", r.args)
	}
}

func checkMinimal(t *testing.T, r *rendered) {
	for k := range r.args {
		if strings.HasPrefix(k, "webhook") {
			t.Errorf("--%s passed with the webhook off", k)
		}
	}
	if r.count("ValidatingWebhookConfiguration")+r.count("Certificate")+r.count("ServiceMonitor") != 0 {
		t.Errorf("webhook objects with the webhook off: %s", kinds(r.objects))
	}
	if n := r.count("Service"); n != 0 {
		t.Errorf("%d Services with metrics and webhook off", n)
	}
	for _, p := range r.deployment.Spec.Template.Spec.Containers[0].Ports {
		if p.Name != "health" {
			t.Errorf("port %s open", p.Name)
		}
	}
	if r.args["metrics-bind-address"] != "0" {
		t.Errorf("--metrics-bind-address=%q", r.args["metrics-bind-address"])
	}
	if _, ok := r.args["leader-elect"]; ok || r.deployment.Spec.Strategy.Type != "Recreate" {
		t.Errorf("leader election off: args %v strategy %q", r.args, r.deployment.Spec.Strategy.Type)
	}
	if r.args["charts-dir"] != "/srv/charts" || r.args["log-level"] != "debug" {
		t.Errorf("--charts-dir=%q --log-level=%q", r.args["charts-dir"], r.args["log-level"])
	}
	pod := r.deployment.Spec.Template.Spec
	ok := false
	for _, m := range pod.Containers[0].VolumeMounts {
		for _, v := range pod.Volumes {
			ok = ok || m.Name == v.Name && m.MountPath == "/srv/charts" && m.ReadOnly && v.ConfigMap != nil && v.ConfigMap.Name == "charts"
		}
	}
	if !ok {
		t.Errorf("charts volume not mounted read-only at /srv/charts: %+v", pod.Volumes)
	}
}

// profileFlags are the operator flags of the multi-tenant profile.
var profileFlags = []string{"default-service-account", "require-service-account", "no-cross-namespace-refs"}

// checkNoProfile: without multiTenant.enabled no profile flag is passed.
func checkNoProfile(t *testing.T, r *rendered) {
	for _, f := range profileFlags {
		if _, ok := r.args[f]; ok {
			t.Errorf("--%s passed without multiTenant.enabled", f)
		}
	}
}

// checkMultiTenant: one value turns on impersonation by default and
// same-namespace sources.
func checkMultiTenant(t *testing.T, r *rendered) {
	if r.args["default-service-account"] != "chartkind-release" {
		t.Errorf("--default-service-account=%q, want chartkind-release", r.args["default-service-account"])
	}
	if _, ok := r.args["no-cross-namespace-refs"]; !ok {
		t.Error("--no-cross-namespace-refs not passed")
	}
	if _, ok := r.args["require-service-account"]; ok {
		t.Error("--require-service-account passed with a default service account")
	}
}

// checkMultiTenantRequire: without a default service account the profile
// refuses definitions that name none.
func checkMultiTenantRequire(t *testing.T, r *rendered) {
	if _, ok := r.args["require-service-account"]; !ok {
		t.Error("--require-service-account not passed")
	}
	for _, f := range []string{"default-service-account", "no-cross-namespace-refs"} {
		if _, ok := r.args[f]; ok {
			t.Errorf("--%s passed", f)
		}
	}
}
