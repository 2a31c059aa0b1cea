package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func parseWebhookFlags(t *testing.T, args ...string) (*webhookFlags, *flag.FlagSet) {
	t.Helper()
	fs := flag.NewFlagSet("operator", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	w := addWebhookFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return w, fs
}

// Outside a cluster the API server cannot reach the webhook Service, so the
// webhook is off unless a URL says where it can be reached; in a cluster it
// is on unless turned off.
func TestWebhookFlagsDefaults(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", "")
	for _, tc := range []struct {
		name      string
		inCluster bool
		args      []string
		want      bool
	}{
		{"outside a cluster", false, nil, false},
		{"outside, with a URL", false, []string{"--webhook-url", "https://127.0.0.1:9443/validate"}, true},
		{"outside, asked for", false, []string{"--webhook"}, true},
		{"in a cluster", true, nil, true},
		{"in a cluster, turned off", true, []string{"--webhook=false"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.inCluster {
				t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
			}
			w, fs := parseWebhookFlags(t, tc.args...)
			o, err := w.options(fs, "")
			if err != nil {
				t.Fatal(err)
			}
			if (o != nil) != tc.want {
				t.Fatalf("webhook enabled = %v, want %v", o != nil, tc.want)
			}
			if o != nil && (o.SecretName != "chartkind-webhook-tls" || o.ServiceName != "chartkind-webhook" || o.ConfigurationName != "chartkind" || o.FailurePolicy != "Fail" || o.Port != 9443) {
				t.Errorf("defaults: %+v", o)
			}
		})
	}
}

func TestWebhookFlagsParsed(t *testing.T) {
	w, fs := parseWebhookFlags(t, "--webhook", "--webhook-secret", "ops/tls", "--webhook-service", "ops/hook", "--webhook-failure-policy", "Ignore", "--webhook-cert-lifetime", "1h")
	o, err := w.options(fs, "")
	if err != nil {
		t.Fatal(err)
	}
	if o.SecretNamespace != "ops" || o.SecretName != "tls" || o.ServiceNamespace != "ops" || o.ServiceName != "hook" || o.FailurePolicy != "Ignore" || o.CertLifetime.String() != "1h0m0s" {
		t.Errorf("options: %+v", o)
	}
	for _, args := range [][]string{
		{"--webhook", "--webhook-secret", "no-namespace"},
		{"--webhook", "--webhook-service", "a/b/c"},
		{"--webhook", "--webhook-failure-policy", "Sometimes"},
		{"--webhook", "--webhook-inject-ca-from", "ns/cert"},
		{"--webhook", "--webhook-cert-lifetime", "0s"},
	} {
		w, fs := parseWebhookFlags(t, args...)
		if _, err := w.options(fs, ""); err == nil || !strings.Contains(err.Error(), "--webhook-") {
			t.Errorf("%v: err = %v, want one naming the flag", args, err)
		}
	}
}
