package webhook

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func testLogger() logr.Logger { return logr.Discard() }

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestCertManager(t *testing.T, c client.Client, clk *clock, bundles *[][]byte) *CertManager {
	t.Helper()
	m, err := NewCertManager(c, c, CertOptions{
		SecretNamespace: "chartkind-system", SecretName: "webhook-tls",
		Hosts:      []string{"127.0.0.1", "localhost"},
		CALifetime: 30 * time.Hour, ServingLifetime: 6 * time.Hour, PropagationDelay: time.Minute,
		ConfigurationName: "chartkind",
		OnBundle:          func(b []byte) { *bundles = append(*bundles, b) },
	})
	if err != nil {
		t.Fatal(err)
	}
	m.now = clk.now
	return m
}

func secretRV(t *testing.T, c client.Client) string {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "chartkind-system", Name: "webhook-tls"}, s); err != nil {
		t.Fatal(err)
	}
	return s.ResourceVersion
}

func served(t *testing.T, m *CertManager) *x509.Certificate {
	t.Helper()
	c, err := m.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

// Replicas share the Secret: the first creates it, the others load it, and
// none writes while nothing is due.
func TestCertManagerSharesSecretAndWritesOnlyWhenDue(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).Build()
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var bundlesA, bundlesB [][]byte
	a := newTestCertManager(t, c, clk, &bundlesA)
	b := newTestCertManager(t, c, clk, &bundlesB)
	if _, err := a.GetCertificate(nil); err == nil {
		t.Fatal("a certificate is served before the first sync")
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rv := secretRV(t, c)
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !served(t, a).Equal(served(t, b)) {
		t.Fatal("replicas serve different certificates")
	}
	if len(bundlesA) != 1 || len(bundlesB) != 1 || string(bundlesA[0]) != string(bundlesB[0]) {
		t.Fatalf("bundles reported: a %d, b %d, want one identical each", len(bundlesA), len(bundlesB))
	}
	clk.t = clk.t.Add(2 * time.Hour)
	for _, m := range []*CertManager{a, b, a} {
		if err := m.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := secretRV(t, c); got != rv {
		t.Errorf("Secret written while nothing was due (resourceVersion %s -> %s)", rv, got)
	}
	if len(bundlesA) != 1 {
		t.Errorf("bundle reported %d times, want once", len(bundlesA))
	}

	// Past two thirds of the serving lifetime, one replica renews; the other
	// picks the new certificate up without a restart.
	first := served(t, a)
	clk.t = clk.t.Add(3 * time.Hour)
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if served(t, a).Equal(first) || !served(t, a).Equal(served(t, b)) {
		t.Error("renewed certificate not served by both replicas")
	}
	if len(bundlesA) != 1 {
		t.Error("a serving renewal changed the CA bundle")
	}
}

// A new CA signs only once the webhook configuration has trusted it for the
// propagation delay.
func TestCertManagerPromotesCAOnlyOnceInjected(t *testing.T) {
	ctx := context.Background()
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "chartkind"},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{{Name: WebhookName}},
	}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(cfg).Build()
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var bundles [][]byte
	m := newTestCertManager(t, c, clk, &bundles)
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	oldCA := served(t, m)
	clk.t = clk.t.Add(21 * time.Hour) // 2/3 of the CA's 30h (+3h backdating)
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(bundles) != 2 {
		t.Fatalf("%d bundles reported, want the new CA added", len(bundles))
	}
	certs, _ := parseCerts(bundles[1])
	if len(certs) != 2 {
		t.Fatalf("bundle has %d CAs during the rotation, want 2", len(certs))
	}
	issuer := func() string { return served(t, m).Issuer.CommonName }
	oldIssuer := oldCA.Issuer.CommonName

	// Not injected: the old CA keeps signing however long it takes.
	clk.t = clk.t.Add(time.Hour)
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if issuer() != oldIssuer {
		t.Fatal("new CA signs before the webhook configuration trusts it")
	}
	// Injected (as the Configurator would): seen now, promoted after the delay.
	cfg.Webhooks[0].ClientConfig.CABundle = bundles[1]
	if err := c.Update(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if issuer() != oldIssuer {
		t.Fatal("new CA signs before the propagation delay")
	}
	clk.t = clk.t.Add(time.Minute)
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if issuer() == oldIssuer {
		t.Fatal("new CA not promoted after the propagation delay")
	}
	if !bundleContainsIssuer(m.Bundle(), oldIssuer) || !bundleContainsIssuer(m.Bundle(), issuer()) {
		t.Error("the bundle must hold both the old CA (until it expires) and the new one")
	}
}

func bundleContainsIssuer(bundle []byte, cn string) bool {
	certs, _ := parseCerts(bundle)
	for _, c := range certs {
		if c.Subject.CommonName == cn {
			return true
		}
	}
	return false
}
