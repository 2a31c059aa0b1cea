package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Default certificate lifetimes. A serving certificate is renewed after two
// thirds of its life (8 months), a CA after two thirds of its own (6.7 years).
const (
	DefaultCALifetime      = 10 * 365 * 24 * time.Hour
	DefaultServingLifetime = 365 * 24 * time.Hour
	// DefaultPropagationDelay is how long a new CA must have been in the
	// webhook configuration before it signs: the API server reads webhook
	// configurations through an informer, normally within a second.
	DefaultPropagationDelay = time.Minute
	// defaultCheckInterval bounds how long a replica serves a certificate
	// after another replica rotated it.
	defaultCheckInterval = time.Minute
)

// CertOptions configure the self-managed certificates.
type CertOptions struct {
	// SecretNamespace and SecretName name the Secret holding the CA and the
	// serving certificate, shared by every replica.
	SecretNamespace, SecretName string
	// Hosts are the DNS names and IP addresses the API server reaches the
	// webhook at (the Service's names, or the host of the webhook URL).
	Hosts []string
	// CALifetime and ServingLifetime default to 10 years and 1 year.
	CALifetime, ServingLifetime time.Duration
	// PropagationDelay defaults to DefaultPropagationDelay.
	PropagationDelay time.Duration
	// CheckInterval is how often the Secret is read (renewals are due, or
	// another replica renewed). Default: a minute, or a twentieth of the
	// serving lifetime when that is shorter.
	CheckInterval time.Duration
	// ConfigurationName is the ValidatingWebhookConfiguration whose caBundle
	// must hold a new CA before that CA signs.
	ConfigurationName string
	// OnBundle is called with the CA bundle whenever it changes (the
	// Configurator's SetCABundle).
	OnBundle func([]byte)
	Logger   logr.Logger
}

// CertManager keeps the webhook's self-signed CA and serving certificate in a
// Secret, renews them before they expire and serves the current one through
// GetCertificate, so a renewal needs no restart. Every replica runs one: all
// serve the certificate in the Secret, and whichever notices first renews it
// (writes carry the resourceVersion they read, so two replicas never both
// win).
type CertManager struct {
	client client.Client
	reader client.Reader
	opts   CertOptions
	hosts  hosts
	log    logr.Logger
	now    func() time.Time

	current atomic.Pointer[tls.Certificate]
	bundle  atomic.Pointer[[]byte]

	mu sync.Mutex
	// nextSeen is when the webhook configuration was first seen trusting the
	// next CA, by its fingerprint.
	nextSeen map[[32]byte]time.Time
}

// NewCertManager returns a CertManager writing with c and reading with r
// (uncached: only the one Secret is read, and no cluster-wide Secret
// informer is needed).
func NewCertManager(c client.Client, r client.Reader, opts CertOptions) (*CertManager, error) {
	if opts.SecretNamespace == "" || opts.SecretName == "" {
		return nil, errors.New("webhook certificates: the Secret namespace and name are required")
	}
	h := hostsFor(opts.Hosts...)
	if len(h.DNSNames) == 0 && len(h.IPs) == 0 {
		return nil, errors.New("webhook certificates: no host names for the serving certificate")
	}
	if opts.CALifetime <= 0 {
		opts.CALifetime = DefaultCALifetime
	}
	if opts.ServingLifetime <= 0 {
		opts.ServingLifetime = DefaultServingLifetime
	}
	if opts.PropagationDelay <= 0 {
		opts.PropagationDelay = DefaultPropagationDelay
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = min(defaultCheckInterval, opts.ServingLifetime/20)
	}
	if opts.OnBundle == nil {
		opts.OnBundle = func([]byte) {}
	}
	log := opts.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	return &CertManager{
		client: c, reader: r, opts: opts, hosts: h, log: log, now: time.Now,
		nextSeen: map[[32]byte]time.Time{},
	}, nil
}

// NeedLeaderElection is false: every replica serves the webhook and needs the
// certificate.
func (m *CertManager) NeedLeaderElection() bool { return false }

// GetCertificate is the webhook server's tls.Config.GetCertificate.
func (m *CertManager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.current.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("webhook serving certificate not loaded yet")
}

// Bundle returns the CA bundle the webhook configuration must trust.
func (m *CertManager) Bundle() []byte {
	if b := m.bundle.Load(); b != nil {
		return *b
	}
	return nil
}

// Ready is a readiness check: ready once a serving certificate is loaded.
func (m *CertManager) Ready(*http.Request) error {
	if m.current.Load() == nil {
		return errors.New("webhook serving certificate not loaded yet")
	}
	return nil
}

// Start checks the certificates at once, then every CheckInterval, retrying
// failures sooner, until ctx is done.
func (m *CertManager) Start(ctx context.Context) error {
	retry := time.Second
	for {
		wait := m.opts.CheckInterval
		if err := m.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.log.Error(err, "checking webhook certificates", "secret", m.opts.SecretNamespace+"/"+m.opts.SecretName)
			wait = min(retry, wait)
			retry = min(2*retry, m.opts.CheckInterval)
		} else {
			retry = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Sync reads the Secret, renews what is due, writes the Secret when it
// changed and loads the result.
func (m *CertManager) Sync(ctx context.Context) error {
	key := types.NamespacedName{Namespace: m.opts.SecretNamespace, Name: m.opts.SecretName}
	secret := &corev1.Secret{}
	exists := true
	if err := m.reader.Get(ctx, key, secret); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading Secret %s: %w", key, err)
		}
		exists = false
	}
	cur, problems := parseState(secret.Data)
	for _, p := range problems {
		m.log.Info("replacing unreadable part of the webhook certificate Secret", "secret", key.String(), "problem", p)
	}
	trusted, err := m.nextTrusted(ctx, cur.next)
	if err != nil {
		return err
	}
	now := m.now()
	want, changes, err := plan(cur, m.hosts, now, lifetimes{CA: m.opts.CALifetime, Serving: m.opts.ServingLifetime}, trusted)
	if err != nil {
		return fmt.Errorf("webhook certificates: %w", err)
	}
	if len(changes) > 0 {
		secret.Data = want.data()
		if secret.Labels == nil {
			secret.Labels = map[string]string{}
		}
		secret.Labels["app.kubernetes.io/managed-by"] = "chartkind"
		if exists {
			err = m.client.Update(ctx, secret, client.FieldOwner(FieldManager))
		} else {
			secret.ObjectMeta = metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: secret.Labels}
			// The type is immutable, so a Secret someone created beforehand keeps its own.
			secret.Type = corev1.SecretTypeTLS
			err = m.client.Create(ctx, secret, client.FieldOwner(FieldManager))
		}
		if err != nil {
			// Another replica wrote first: its certificates win, read them next time.
			return fmt.Errorf("writing Secret %s (%s): %w", key, strings.Join(changes, "; "), err)
		}
		m.log.Info("webhook certificates renewed", "secret", key.String(), "changes", changes,
			"servingNotAfter", want.serving.cert.NotAfter, "caNotAfter", want.signer.cert.NotAfter)
	}
	return m.load(want)
}

// load makes s the served certificate and bundle.
func (m *CertManager) load(s *tlsState) error {
	pair, err := tls.X509KeyPair(s.serving.certPEM, s.serving.keyPEM)
	if err != nil {
		return fmt.Errorf("loading the webhook serving certificate: %w", err)
	}
	pair.Leaf = s.serving.cert
	if old := m.current.Load(); old == nil || !bytes.Equal(old.Certificate[0], pair.Certificate[0]) {
		m.current.Store(&pair)
		m.log.V(1).Info("serving webhook certificate", "serial", s.serving.cert.SerialNumber.Text(16), "notAfter", s.serving.cert.NotAfter)
	}
	certExpiry.WithLabelValues("serving").Set(float64(s.serving.cert.NotAfter.Unix()))
	certExpiry.WithLabelValues("ca").Set(float64(s.signer.cert.NotAfter.Unix()))
	b := encodeCerts(s.bundle)
	if old := m.bundle.Load(); old == nil || !bytes.Equal(*old, b) {
		m.bundle.Store(&b)
		m.opts.OnBundle(b)
	}
	return nil
}

// nextTrusted reports whether the webhook configuration has trusted next for
// at least the propagation delay, as seen by this replica.
func (m *CertManager) nextTrusted(ctx context.Context, next *keyPair) (bool, error) {
	if next == nil {
		return false, nil
	}
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	err := m.reader.Get(ctx, types.NamespacedName{Name: m.opts.ConfigurationName}, cfg)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", m.opts.ConfigurationName, err)
	}
	fp := fingerprint(next.cert)
	trusts := false
	for _, w := range cfg.Webhooks {
		if w.Name == WebhookName {
			trusts = bundleContains(w.ClientConfig.CABundle, next.cert)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !trusts {
		delete(m.nextSeen, fp)
		return false, nil
	}
	seen, ok := m.nextSeen[fp]
	if !ok {
		m.nextSeen[fp] = m.now()
		return false, nil
	}
	return m.now().Sub(seen) >= m.opts.PropagationDelay, nil
}

func bundleContains(bundle []byte, c *x509.Certificate) bool {
	certs, err := parseCerts(bundle)
	if err != nil {
		return false
	}
	for _, b := range certs {
		if b.Equal(c) {
			return true
		}
	}
	return false
}
