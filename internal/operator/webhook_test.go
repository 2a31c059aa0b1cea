package operator

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"
)

// The API server reaches the webhook by URL (outside a cluster) or through
// the Service; the serving certificate is issued for the names it uses.
func TestWebhookClientConfig(t *testing.T) {
	o := WebhookOptions{URL: "https://127.0.0.1:9443"}
	o.setDefaults()
	cc, hosts, err := o.clientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(cc.URL, "") != "https://127.0.0.1:9443/validate" || cc.Service != nil || strings.Join(hosts, ",") != "127.0.0.1,localhost" {
		t.Errorf("URL: %+v, hosts %v", cc, hosts)
	}

	o = WebhookOptions{ServiceNamespace: "ops", ServiceName: "hook"}
	o.setDefaults()
	cc, hosts, err = o.clientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if s := cc.Service; s == nil || s.Namespace != "ops" || s.Name != "hook" || ptr.Deref(s.Path, "") != "/validate" || ptr.Deref(s.Port, 0) != 443 || cc.URL != nil {
		t.Errorf("Service: %+v", cc)
	}
	if strings.Join(hosts, ",") != "hook,hook.ops,hook.ops.svc,hook.ops.svc.cluster.local" {
		t.Errorf("hosts %v", hosts)
	}
	if o.SecretNamespace != "ops" || o.SecretName != "chartkind-webhook-tls" || o.ConfigurationName != "chartkind" || o.FailurePolicy != "Fail" || o.Port != 9443 {
		t.Errorf("defaults: %+v", o)
	}

	for _, u := range []string{"http://127.0.0.1:9443/validate", "https:///validate", "https://127.0.0.1/other"} {
		o := WebhookOptions{URL: u}
		if _, _, err := o.clientConfig(); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}
