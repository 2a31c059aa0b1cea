package webhook

import (
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
)

var testHosts = hostsFor("chartkind-webhook.chartkind-system.svc", "chartkind-webhook", "127.0.0.1")

// verify checks that serving chains to one of the CAs in bundle at now, for
// every name it must serve: what the API server does on each TLS handshake.
func verify(t *testing.T, serving *x509.Certificate, bundle []*x509.Certificate, now time.Time) error {
	t.Helper()
	roots := x509.NewCertPool()
	for _, c := range bundle {
		roots.AddCert(c)
	}
	for _, name := range append(append([]string{}, testHosts.DNSNames...), "127.0.0.1") {
		if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return err
		}
	}
	return nil
}

func TestNewServingCertChainsToCA(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ca, err := newCA(now, 10*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServingCert(ca, testHosts, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, s.cert, []*x509.Certificate{ca.cert}, now); err != nil {
		t.Errorf("serving certificate does not verify against its CA: %v", err)
	}
	if !s.cert.NotAfter.Equal(now.Add(time.Hour)) {
		t.Errorf("NotAfter = %v, want %v", s.cert.NotAfter, now.Add(time.Hour))
	}
	if s.cert.IsCA {
		t.Error("serving certificate is a CA")
	}
	// A serving certificate never outlives the CA that signed it.
	long, err := newServingCert(ca, testHosts, now, 100*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !long.cert.NotAfter.Equal(ca.cert.NotAfter) {
		t.Errorf("NotAfter = %v, want the CA's %v", long.cert.NotAfter, ca.cert.NotAfter)
	}
	if _, err := newServingCert(ca, hosts{}, now, time.Hour); err == nil {
		t.Error("a serving certificate for no names was issued")
	}
}

func TestRotationDueAtTwoThirds(t *testing.T) {
	c := &x509.Certificate{NotBefore: time.Unix(0, 0), NotAfter: time.Unix(300, 0)}
	for _, tc := range []struct {
		at   int64
		want bool
	}{{0, false}, {199, false}, {200, true}, {299, true}, {400, true}} {
		if got := rotationDue(c, time.Unix(tc.at, 0)); got != tc.want {
			t.Errorf("rotationDue at %ds of 300s = %v, want %v", tc.at, got, tc.want)
		}
	}
}

func mustPlan(t *testing.T, cur *tlsState, now time.Time, lt lifetimes, trusted bool) (*tlsState, []string) {
	t.Helper()
	s, changes, err := plan(cur, testHosts, now, lt, trusted)
	if err != nil {
		t.Fatal(err)
	}
	return s, changes
}

func TestPlanBootstrapsAndThenRestsStill(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	lt := lifetimes{CA: 300 * time.Hour, Serving: 30 * time.Hour}
	s, changes := mustPlan(t, nil, now, lt, false)
	if len(changes) == 0 {
		t.Fatal("no changes planned for an empty Secret")
	}
	if s.signer == nil || s.serving == nil || s.next != nil || len(s.bundle) != 1 || !s.bundle[0].Equal(s.signer.cert) {
		t.Fatalf("unexpected state: signer %v serving %v next %v bundle %d", s.signer != nil, s.serving != nil, s.next != nil, len(s.bundle))
	}
	if err := verify(t, s.serving.cert, s.bundle, now); err != nil {
		t.Fatal(err)
	}
	// What is written reads back identically and, at any time before a
	// renewal is due, needs no write: an idle operator writes nothing.
	back, problems := parseState(s.data())
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	for _, at := range []time.Duration{0, time.Hour, 19 * time.Hour} {
		if _, changes := mustPlan(t, back, now.Add(at), lt, false); len(changes) > 0 {
			t.Errorf("at +%s: changes %v, want none", at, changes)
		}
	}
}

func TestPlanRenewsServingCertificate(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	lt := lifetimes{CA: 300 * time.Hour, Serving: 30 * time.Hour}
	s, _ := mustPlan(t, nil, now, lt, false)
	later := now.Add(21 * time.Hour) // past 2/3 of 30h (+3h backdating)
	r, changes := mustPlan(t, s, later, lt, false)
	if len(changes) != 1 || !strings.Contains(changes[0], "two thirds") {
		t.Fatalf("changes = %v, want a serving renewal only", changes)
	}
	if r.serving.cert.Equal(s.serving.cert) || !r.signer.cert.Equal(s.signer.cert) || len(r.bundle) != 1 {
		t.Fatal("want a new serving certificate from the same CA, with the bundle unchanged")
	}
	if err := verify(t, r.serving.cert, s.bundle, later); err != nil {
		t.Errorf("renewed certificate does not verify against the bundle already injected: %v", err)
	}
}

func TestPlanReissuesForNewNamesAndReplacesGarbage(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	lt := lifetimes{CA: 300 * time.Hour, Serving: 30 * time.Hour}
	s, _ := mustPlan(t, nil, now, lt, false)
	other := hostsFor("renamed.chartkind-system.svc")
	r, changes, err := plan(s, other, now, lt, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.Contains(changes[0], "names changed") || r.serving.cert.DNSNames[0] != "renamed.chartkind-system.svc" {
		t.Fatalf("changes = %v, DNS names %v", changes, r.serving.cert.DNSNames)
	}

	data := s.data()
	data[KeyServingKey] = []byte("not a key")
	cur, problems := parseState(data)
	if len(problems) != 1 || cur.serving != nil {
		t.Fatalf("problems = %v, serving parsed: %v", problems, cur.serving != nil)
	}
	r, changes = mustPlan(t, cur, now, lt, false)
	if len(changes) != 1 || r.serving == nil || !r.signer.cert.Equal(s.signer.cert) {
		t.Fatalf("changes = %v: want only the unreadable serving certificate replaced", changes)
	}
}

// A CA rotation happens in two steps and never leaves the API server with a
// bundle that does not trust the certificate being served.
func TestPlanRotatesCAInTwoSteps(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	lt := lifetimes{CA: 30 * time.Hour, Serving: 6 * time.Hour}
	s, _ := mustPlan(t, nil, now, lt, false)
	oldCA := s.signer.cert

	// Step 1, at 2/3 of the CA's life: the new CA joins the bundle; the old one still signs.
	at := now.Add(21 * time.Hour)
	s1, changes := mustPlan(t, s, at, lt, false)
	if s1.next == nil || len(s1.bundle) != 2 || !s1.signer.cert.Equal(oldCA) {
		t.Fatalf("changes %v: want a next CA in a bundle of 2, old CA still signing", changes)
	}
	if s1.serving.cert.CheckSignatureFrom(oldCA) != nil {
		t.Fatal("serving certificate must still come from the old CA")
	}
	// Not trusted yet: nothing moves.
	if _, changes := mustPlan(t, s1, at.Add(time.Minute), lt, false); len(changes) > 0 {
		t.Fatalf("changes %v before the new CA is trusted", changes)
	}
	// Step 2: trusted, the new CA signs; the old CA stays in the bundle.
	s2, changes := mustPlan(t, s1, at.Add(time.Minute), lt, true)
	if s2.next != nil || !s2.signer.cert.Equal(s1.next.cert) || len(s2.bundle) != 2 {
		t.Fatalf("changes %v: want the next CA promoted, bundle of 2", changes)
	}
	if s2.serving.cert.CheckSignatureFrom(s1.next.cert) != nil {
		t.Fatal("serving certificate not reissued by the new CA")
	}
	if err := verify(t, s2.serving.cert, s1.bundle, at.Add(time.Minute)); err != nil {
		t.Errorf("new serving certificate not trusted by the bundle injected in step 1: %v", err)
	}
	// Once the old CA expires it leaves the bundle.
	s3, changes := mustPlan(t, s2, oldCA.NotAfter.Add(time.Second), lt, false)
	if len(s3.bundle) != 1 || !s3.bundle[0].Equal(s2.signer.cert) {
		t.Fatalf("changes %v: bundle has %d CAs after the old CA expired, want 1", changes, len(s3.bundle))
	}
}

// Simulates many rotations: the API server sees each bundle only two checks
// later (slow injection), and a new CA is promoted only after the API server
// had it for a while. At every instant, the certificate served must verify
// against what the API server has.
func TestRotationNeverUntrusted(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	lt := lifetimes{CA: 40 * time.Minute, Serving: 9 * time.Minute}
	const step, delay = 30 * time.Second, time.Minute
	s, _ := mustPlan(t, nil, start, lt, false)
	apiserver := s.bundle
	pending := [][]*x509.Certificate{s.bundle} // written, not yet seen by the API server
	var nextSince time.Time
	rotations, caRotations := 0, 0
	for now := start; now.Before(start.Add(6 * time.Hour)); now = now.Add(step) {
		trusted := false
		if s.next != nil && bundleHas(apiserver, s.next.cert) {
			if nextSince.IsZero() {
				nextSince = now
			}
			trusted = now.Sub(nextSince) >= delay
		} else {
			nextSince = time.Time{}
		}
		prevSigner := s.signer.cert
		n, changes := mustPlan(t, s, now, lt, trusted)
		if len(changes) > 0 {
			rotations++
			if !n.signer.cert.Equal(prevSigner) {
				caRotations++
			}
		}
		if err := verify(t, n.serving.cert, apiserver, now); err != nil {
			t.Fatalf("at +%s (changes %v): served certificate not trusted by the API server's bundle: %v", now.Sub(start), changes, err)
		}
		pending = append(pending, n.bundle)
		apiserver, pending = pending[0], pending[1:] // the injection lands two steps later
		s = n
	}
	if caRotations < 8 || rotations < 40 {
		t.Errorf("only %d changes and %d CA rotations in 6h: the simulation did not exercise rotation", rotations, caRotations)
	}
}

func bundleHas(bundle []*x509.Certificate, c *x509.Certificate) bool {
	for _, b := range bundle {
		if b.Equal(c) {
			return true
		}
	}
	return false
}

func TestHostsFor(t *testing.T) {
	h := hostsFor("b.example", "10.0.0.1", "a.example", "b.example", "", "::1")
	if strings.Join(h.DNSNames, ",") != "a.example,b.example" || len(h.IPs) != 2 || !h.IPs[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Errorf("hostsFor = %v %v", h.DNSNames, h.IPs)
	}
}
