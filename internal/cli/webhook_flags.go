package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/webhook"
)

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// webhookFlags are the flags of the validating admission webhook
// (docs/webhook.md).
type webhookFlags struct {
	enabled                  *bool
	opts                     operator.WebhookOptions
	secret, service          string
	caLifetime, certLifetime time.Duration
}

func addWebhookFlags(fs *flag.FlagSet) *webhookFlags {
	w := &webhookFlags{}
	w.enabled = fs.Bool("webhook", false, "serve the validating admission webhook (default: on in a cluster; outside one, on only with --webhook-url, since the API server cannot reach the Service)")
	fs.StringVar(&w.opts.Host, "webhook-host", "", "`ADDRESS` the webhook server listens on (default: all)")
	fs.IntVar(&w.opts.Port, "webhook-port", operator.DefaultWebhookPort, "`PORT` the webhook server listens on")
	fs.StringVar(&w.opts.CertDir, "webhook-cert-dir", "", "`DIR` with tls.crt and tls.key from elsewhere (a cert-manager Secret), reloaded when they change; caBundle is left to cert-manager's CA injector. Default: the operator manages its own CA and certificate in --webhook-secret")
	fs.StringVar(&w.secret, "webhook-secret", "", "`NAMESPACE/NAME` of the Secret holding the self-managed CA and certificate (default: "+operator.DefaultWebhookSecretName+" in the operator's namespace)")
	fs.StringVar(&w.service, "webhook-service", "", "`NAMESPACE/NAME` of the webhook Service the API server calls (default: "+operator.DefaultWebhookServiceName+" in the operator's namespace)")
	fs.StringVar(&w.opts.URL, "webhook-url", "", "`URL` the API server calls instead of the Service, e.g. https://127.0.0.1:9443/validate (an operator outside the cluster)")
	fs.StringVar(&w.opts.ConfigurationName, "webhook-configuration", webhook.DefaultConfigurationName, "`NAME` of the ValidatingWebhookConfiguration")
	fs.StringVar(&w.opts.FailurePolicy, "webhook-failure-policy", "Fail", "`POLICY` of a webhook configuration the operator creates: Fail (refuse creates and spec changes while the webhook is unreachable) or Ignore")
	fs.StringVar(&w.opts.InjectCAFrom, "webhook-inject-ca-from", "", "`NAMESPACE/CERTIFICATE`: with --webhook-cert-dir, annotate a configuration the operator creates for cert-manager's CA injector")
	fs.DurationVar(&w.caLifetime, "webhook-ca-lifetime", webhook.DefaultCALifetime, "`DURATION` of the self-managed CA; renewed after two thirds")
	fs.DurationVar(&w.certLifetime, "webhook-cert-lifetime", webhook.DefaultServingLifetime, "`DURATION` of the self-managed serving certificate; renewed after two thirds")
	return w
}

// options returns the webhook options, or nil when the webhook is off.
func (w *webhookFlags) options(fs *flag.FlagSet, kubeconfig string) (*operator.WebhookOptions, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	inCluster := kubeconfig == "" && os.Getenv("KUBECONFIG") == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != ""
	enabled := inCluster || w.opts.URL != ""
	if set["webhook"] {
		enabled = *w.enabled
	}
	if !enabled {
		return nil, nil
	}
	o := w.opts
	ns := ownNamespace()
	var err error
	if o.SecretNamespace, o.SecretName, err = namespacedName("--webhook-secret", w.secret, ns, operator.DefaultWebhookSecretName); err != nil {
		return nil, err
	}
	if o.ServiceNamespace, o.ServiceName, err = namespacedName("--webhook-service", w.service, ns, operator.DefaultWebhookServiceName); err != nil {
		return nil, err
	}
	if o.FailurePolicy != "Fail" && o.FailurePolicy != "Ignore" {
		return nil, fmt.Errorf("--webhook-failure-policy %q: want Fail or Ignore", o.FailurePolicy)
	}
	if o.InjectCAFrom != "" && o.CertDir == "" {
		return nil, fmt.Errorf("--webhook-inject-ca-from needs --webhook-cert-dir: the operator's own certificates are not cert-manager's")
	}
	if w.caLifetime <= 0 || w.certLifetime <= 0 {
		return nil, fmt.Errorf("--webhook-ca-lifetime and --webhook-cert-lifetime must be positive")
	}
	o.CALifetime, o.CertLifetime = w.caLifetime, w.certLifetime
	return &o, nil
}

// ownNamespace is the pod's namespace in a cluster, else chartkind-system.
func ownNamespace() string {
	if b, err := os.ReadFile(serviceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return operator.DefaultWebhookNamespace
}

func namespacedName(flagName, v, defNS, defName string) (string, string, error) {
	if v == "" {
		return defNS, defName, nil
	}
	ns, name, ok := strings.Cut(v, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%s %q: want NAMESPACE/NAME", flagName, v)
	}
	return ns, name, nil
}
