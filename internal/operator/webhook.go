package operator

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/chartkind/chartkind/internal/webhook"
)

// RBAC of the validating admission webhook: its configuration (created when
// missing, then server-side applied), and the Secret holding the self-managed
// certificates, in the operator's namespace only.
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",namespace=chartkind-system,resources=secrets,verbs=get;create;update

// Defaults of WebhookOptions.
const (
	DefaultWebhookPort        = 9443
	DefaultWebhookNamespace   = "chartkind-system"
	DefaultWebhookSecretName  = "chartkind-webhook-tls"
	DefaultWebhookServiceName = "chartkind-webhook"
)

// WebhookOptions configure the validating admission webhook (docs/webhook.md).
// The API server reaches it through ServiceNamespace/ServiceName or, outside a
// cluster, through URL.
type WebhookOptions struct {
	// Host and Port the webhook server listens on; Port defaults to 9443.
	Host string
	Port int
	// CertDir holds tls.crt and tls.key from elsewhere (a cert-manager
	// Secret), reloaded when they change; caBundle is then left to
	// cert-manager's CA injector. Empty: chartkind manages its own CA and
	// certificate in the Secret SecretNamespace/SecretName.
	CertDir string
	// SecretNamespace defaults to ServiceNamespace, then chartkind-system;
	// SecretName to chartkind-webhook-tls.
	SecretNamespace, SecretName string
	// ServiceNamespace/ServiceName (default chartkind-system/chartkind-webhook)
	// and ServicePort (default 443) are the webhook Service, used when URL is empty.
	ServiceNamespace, ServiceName string
	ServicePort                   int32
	// URL is where the API server calls the webhook, e.g.
	// https://127.0.0.1:9443/validate (tests, the local demo); the path
	// defaults to /validate.
	URL string
	// ConfigurationName is the ValidatingWebhookConfiguration; default chartkind.
	ConfigurationName string
	// FailurePolicy of a configuration chartkind creates: Fail (default) or Ignore.
	FailurePolicy string
	// InjectCAFrom ("namespace/certificate"), with CertDir, annotates a
	// configuration chartkind creates for cert-manager's CA injector.
	InjectCAFrom string
	// Lifetimes of self-managed certificates (default 10 years and 1 year),
	// how long a new CA is trusted before it signs (default 1 minute) and how
	// often the Secret is read (default 1 minute); short values let tests
	// rotate in seconds.
	CALifetime, CertLifetime time.Duration
	CAPropagationDelay       time.Duration
	CertCheckInterval        time.Duration
}

// clientConfig returns how the API server reaches the webhook and the names
// the serving certificate must carry.
func (o *WebhookOptions) clientConfig() (admissionregistrationv1.WebhookClientConfig, []string, error) {
	if o.URL != "" {
		u, err := url.Parse(o.URL)
		if err != nil {
			return admissionregistrationv1.WebhookClientConfig{}, nil, fmt.Errorf("webhook URL %q: %w", o.URL, err)
		}
		if u.Scheme != "https" || u.Hostname() == "" {
			return admissionregistrationv1.WebhookClientConfig{}, nil, fmt.Errorf("webhook URL %q: want https://HOST[:PORT][/PATH]", o.URL)
		}
		switch u.Path {
		case "", "/":
			u.Path = webhook.Path
		case webhook.Path:
		default:
			return admissionregistrationv1.WebhookClientConfig{}, nil, fmt.Errorf("webhook URL %q: the webhook is served at %s", o.URL, webhook.Path)
		}
		hosts := []string{u.Hostname()}
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() {
			hosts = append(hosts, "localhost")
		}
		return admissionregistrationv1.WebhookClientConfig{URL: ptr.To(u.String())}, hosts, nil
	}
	ns, name := o.ServiceNamespace, o.ServiceName
	svc := &admissionregistrationv1.ServiceReference{Namespace: ns, Name: name, Path: ptr.To(webhook.Path), Port: ptr.To(o.ServicePort)}
	return admissionregistrationv1.WebhookClientConfig{Service: svc},
		[]string{name, name + "." + ns, name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local"}, nil
}

func (o *WebhookOptions) setDefaults() {
	if o.Port == 0 {
		o.Port = DefaultWebhookPort
	}
	if o.ServiceNamespace == "" {
		o.ServiceNamespace = DefaultWebhookNamespace
	}
	if o.ServiceName == "" {
		o.ServiceName = DefaultWebhookServiceName
	}
	if o.ServicePort == 0 {
		o.ServicePort = 443
	}
	if o.SecretNamespace == "" {
		o.SecretNamespace = o.ServiceNamespace
	}
	if o.SecretName == "" {
		o.SecretName = DefaultWebhookSecretName
	}
	if o.ConfigurationName == "" {
		o.ConfigurationName = webhook.DefaultConfigurationName
	}
	if o.FailurePolicy == "" {
		o.FailurePolicy = string(admissionregistrationv1.Fail)
	}
}

// setupWebhook adds the webhook server, the configuration controller and,
// with self-managed certificates, the certificate manager to mgr, and returns
// the handler, which observes served kinds.
func setupWebhook(mgr manager.Manager, o WebhookOptions, log logr.Logger) (*webhook.Handler, error) {
	o.setDefaults()
	policy := admissionregistrationv1.FailurePolicyType(o.FailurePolicy)
	if policy != admissionregistrationv1.Fail && policy != admissionregistrationv1.Ignore {
		return nil, fmt.Errorf("webhook failure policy %q: want Fail or Ignore", o.FailurePolicy)
	}
	if o.InjectCAFrom != "" && o.CertDir == "" {
		return nil, errors.New("webhook: a cert-manager CA injection source needs certificates from a directory (cert dir)")
	}
	cc, hosts, err := o.clientConfig()
	if err != nil {
		return nil, err
	}
	log = log.WithName("webhook")
	manage := o.CertDir == ""
	cfg := webhook.NewConfigurator(mgr.GetClient(), mgr.GetAPIReader(), webhook.ConfigOptions{
		Name: o.ConfigurationName, ClientConfig: cc, FailurePolicy: policy,
		ManageCABundle: manage, InjectCAFrom: o.InjectCAFrom, Logger: log.WithName("configuration"),
	})
	if err := cfg.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("operator: setting up webhook configuration controller: %w", err)
	}

	// HTTP/2 is off, as kubebuilder advises since CVE-2023-44487 (rapid
	// reset); the API server talks HTTP/1.1 to webhooks just as well.
	tlsOpts := []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	if manage {
		certs, err := webhook.NewCertManager(mgr.GetClient(), mgr.GetAPIReader(), webhook.CertOptions{
			SecretNamespace: o.SecretNamespace, SecretName: o.SecretName, Hosts: hosts,
			CALifetime: o.CALifetime, ServingLifetime: o.CertLifetime,
			PropagationDelay: o.CAPropagationDelay, CheckInterval: o.CertCheckInterval,
			ConfigurationName: o.ConfigurationName, OnBundle: cfg.SetCABundle,
			Logger: log.WithName("certificates"),
		})
		if err != nil {
			return nil, err
		}
		if err := mgr.Add(certs); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("webhook-certificate", certs.Ready); err != nil {
			return nil, err
		}
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.GetCertificate = certs.GetCertificate })
	}
	// Without GetCertificate the server reads CertDir/tls.crt and tls.key
	// with controller-runtime's certwatcher, which reloads them on change.
	server := crwebhook.NewServer(crwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir, TLSOpts: tlsOpts})
	h := webhook.NewHandler(nil, cfg, log.WithName("admission"))
	server.Register(webhook.Path, &admission.Webhook{Handler: h})
	if err := mgr.Add(server); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return nil, err
	}
	log.Info("validating webhook configured", "listen", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)),
		"configuration", o.ConfigurationName, "failurePolicy", o.FailurePolicy, "selfManagedCertificates", manage)
	return h, nil
}
