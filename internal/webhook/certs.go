package webhook

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"sort"
	"time"
)

// Keys of the certificate Secret. tls.crt and tls.key follow the
// kubernetes.io/tls convention; ca.crt is the trust bundle injected into the
// webhook configuration, which during a CA rotation holds more than one CA.
const (
	KeyServingCert    = "tls.crt"
	KeyServingKey     = "tls.key"
	KeyCABundle       = "ca.crt"
	KeySignerCert     = "signer.crt"
	KeySignerKey      = "signer.key"
	KeyNextSignerCert = "next-signer.crt"
	KeyNextSignerKey  = "next-signer.key"
)

// maxBackdate bounds how far certificates are backdated: an API server whose
// clock is a little behind the operator's must not find a fresh certificate
// "not yet valid".
const maxBackdate = 5 * time.Minute

// keyPair is a certificate with its private key, parsed and in PEM.
type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// hosts are the names a serving certificate is for.
type hosts struct {
	DNSNames []string
	IPs      []net.IP
}

func (h hosts) String() string {
	s := slices.Clone(h.DNSNames)
	for _, ip := range h.IPs {
		s = append(s, ip.String())
	}
	return fmt.Sprint(s)
}

// hostsFor splits names into DNS names and IP addresses, sorted and without
// duplicates, so that comparing them with a certificate's is exact.
func hostsFor(names ...string) hosts {
	var h hosts
	for _, n := range names {
		if n == "" {
			continue
		}
		if ip := net.ParseIP(n); ip != nil {
			h.IPs = append(h.IPs, ip)
		} else {
			h.DNSNames = append(h.DNSNames, n)
		}
	}
	h.DNSNames = sortedUnique(h.DNSNames)
	ips := make([]string, 0, len(h.IPs))
	for _, ip := range h.IPs {
		ips = append(ips, ip.String())
	}
	h.IPs = nil
	for _, s := range sortedUnique(ips) {
		h.IPs = append(h.IPs, net.ParseIP(s))
	}
	return h
}

func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	sort.Strings(out)
	return slices.Compact(out)
}

// covers reports whether c was issued for exactly h: a certificate for other
// names (a renamed Service) is reissued rather than kept until it expires.
func (h hosts) coveredExactlyBy(c *x509.Certificate) bool {
	return slices.Equal(sortedUnique(c.DNSNames), h.DNSNames) &&
		slices.EqualFunc(normalizeIPs(c.IPAddresses), h.IPs, func(a, b net.IP) bool { return a.Equal(b) })
}

func normalizeIPs(ips []net.IP) []net.IP {
	s := make([]string, 0, len(ips))
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	out := make([]net.IP, 0, len(ips))
	for _, v := range sortedUnique(s) {
		out = append(out, net.ParseIP(v))
	}
	return out
}

func backdate(lifetime time.Duration) time.Duration { return min(maxBackdate, lifetime/10) }

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newCA creates a self-signed CA valid for lifetime from now.
func newCA(now time.Time, lifetime time.Duration) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The time in the name tells CAs of successive rotations apart in a bundle.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("chartkind-webhook-ca@%d", now.Unix()), Organization: []string{"chartkind"}},
		NotBefore:             now.Add(-backdate(lifetime)),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	return newKeyPair(der, key)
}

// newServingCert issues a serving certificate for h, signed by ca. It never
// outlives its CA, so a CA rotation is never late because of it.
func newServingCert(ca *keyPair, h hosts, now time.Time, lifetime time.Duration) (*keyPair, error) {
	if len(h.DNSNames) == 0 && len(h.IPs) == 0 {
		return nil, errors.New("serving certificate: no DNS names or IP addresses")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating serving key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	cn := "chartkind-webhook"
	if len(h.DNSNames) > 0 {
		cn = h.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"chartkind"}},
		DNSNames:     h.DNSNames,
		IPAddresses:  h.IPs,
		NotBefore:    now.Add(-backdate(lifetime)),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("creating serving certificate: %w", err)
	}
	return newKeyPair(der, key)
}

func newKeyPair(der []byte, key *ecdsa.PrivateKey) (*keyPair, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// parseKeyPair reads a certificate and its EC private key from PEM and checks
// that they belong together.
func parseKeyPair(certPEM, keyPEM []byte) (*keyPair, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("want 1 certificate, found %d", len(certs))
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("no PEM private key")
	}
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	pub, ok := certs[0].PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("private key does not match the certificate")
	}
	return &keyPair{cert: certs[0], key: key, certPEM: slices.Clone(certPEM), keyPEM: slices.Clone(keyPEM)}, nil
}

// parseCerts reads every CERTIFICATE block of a PEM bundle.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// rotationDue reports whether c has used up two thirds of its validity: the
// remaining third leaves time for every replica to pick up the successor, and
// for a CA also for the new bundle to reach the API server before the CA is
// used.
func rotationDue(c *x509.Certificate, now time.Time) bool {
	span := c.NotAfter.Sub(c.NotBefore)
	return !now.Before(c.NotBefore.Add(span * 2 / 3))
}

func expired(c *x509.Certificate, now time.Time) bool { return !now.Before(c.NotAfter) }

func fingerprint(c *x509.Certificate) [32]byte { return sha256.Sum256(c.Raw) }

// tlsState is what the certificate Secret holds.
type tlsState struct {
	// signer is the CA that signs serving certificates.
	signer *keyPair
	// next is the CA that takes over from signer once the API server trusts it;
	// nil outside a CA rotation.
	next *keyPair
	// bundle is every CA the API server must trust: signer, next, and earlier
	// signers until they expire (replicas may still serve their certificates).
	bundle []*x509.Certificate
	// serving is the webhook's serving certificate, signed by signer.
	serving *keyPair
}

// parseState reads a Secret's data. Unreadable parts are left nil and
// reported, so that plan replaces them instead of failing forever.
func parseState(data map[string][]byte) (*tlsState, []string) {
	s := &tlsState{}
	var problems []string
	read := func(what, certKey, keyKey string) *keyPair {
		if len(data[certKey]) == 0 && len(data[keyKey]) == 0 {
			return nil
		}
		kp, err := parseKeyPair(data[certKey], data[keyKey])
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s (%s, %s): %v", what, certKey, keyKey, err))
			return nil
		}
		return kp
	}
	s.signer = read("signing CA", KeySignerCert, KeySignerKey)
	s.next = read("next signing CA", KeyNextSignerCert, KeyNextSignerKey)
	s.serving = read("serving certificate", KeyServingCert, KeyServingKey)
	if len(data[KeyCABundle]) > 0 {
		b, err := parseCerts(data[KeyCABundle])
		if err != nil {
			problems = append(problems, fmt.Sprintf("CA bundle (%s): %v", KeyCABundle, err))
		}
		s.bundle = b
	}
	return s, problems
}

// data is the Secret data for s.
func (s *tlsState) data() map[string][]byte {
	d := map[string][]byte{KeyCABundle: encodeCerts(s.bundle)}
	put := func(kp *keyPair, certKey, keyKey string) {
		if kp != nil {
			d[certKey], d[keyKey] = kp.certPEM, kp.keyPEM
		}
	}
	put(s.signer, KeySignerCert, KeySignerKey)
	put(s.next, KeyNextSignerCert, KeyNextSignerKey)
	put(s.serving, KeyServingCert, KeyServingKey)
	return d
}

// lifetimes are the validity periods of new certificates.
type lifetimes struct {
	CA      time.Duration
	Serving time.Duration
}

// plan returns the state the Secret should hold at now, and why it differs
// from cur (nothing: no write). nextTrusted says that the webhook
// configuration has trusted cur.next long enough for the API server to have
// picked it up, so next may start signing.
//
// A CA rotation takes two steps so that admission is never interrupted: first
// the new CA joins the bundle while the old one still signs; only once the API
// server trusts the bundle holding both does the new CA sign the serving
// certificate. The old CA stays in the bundle until it expires, for replicas
// that have not reloaded yet.
func plan(cur *tlsState, h hosts, now time.Time, lt lifetimes, nextTrusted bool) (*tlsState, []string, error) {
	s := &tlsState{}
	if cur != nil {
		*s = *cur
		s.bundle = slices.Clone(cur.bundle)
	}
	var changes []string
	if s.next != nil && (!s.next.cert.IsCA || expired(s.next.cert, now)) {
		s.next = nil
		changes = append(changes, "dropped the expired next CA")
	}
	switch {
	case s.signer != nil && s.signer.cert.IsCA && !expired(s.signer.cert, now):
	case s.next != nil:
		s.signer, s.next = s.next, nil
		changes = append(changes, "promoted the next CA: the signing CA is missing or expired")
	default:
		ca, err := newCA(now, lt.CA)
		if err != nil {
			return nil, nil, err
		}
		s.signer = ca
		changes = append(changes, "created a CA")
	}
	if s.next == nil && rotationDue(s.signer.cert, now) {
		ca, err := newCA(now, lt.CA)
		if err != nil {
			return nil, nil, err
		}
		s.next = ca
		changes = append(changes, "started a CA rotation: the new CA joins the bundle")
	} else if s.next != nil && nextTrusted {
		s.signer, s.next = s.next, nil
		changes = append(changes, "promoted the new CA: the webhook configuration trusts it")
	}

	// The bundle: unexpired CAs already trusted, then the signer and next.
	var bundle []*x509.Certificate
	seen := map[[32]byte]bool{}
	add := func(c *x509.Certificate) {
		if fp := fingerprint(c); !seen[fp] && !expired(c, now) {
			seen[fp] = true
			bundle = append(bundle, c)
		}
	}
	for _, c := range s.bundle {
		add(c)
	}
	add(s.signer.cert)
	if s.next != nil {
		add(s.next.cert)
	}
	if !bytes.Equal(encodeCerts(bundle), encodeCerts(s.bundle)) {
		changes = append(changes, "updated the CA bundle")
	}
	s.bundle = bundle

	if why := servingNeedsRenewal(s.serving, s.signer, h, now); why != "" {
		kp, err := newServingCert(s.signer, h, now, lt.Serving)
		if err != nil {
			return nil, nil, err
		}
		s.serving = kp
		changes = append(changes, "issued a serving certificate: "+why)
	}
	return s, changes, nil
}

// servingNeedsRenewal says why the serving certificate must be reissued, or "".
func servingNeedsRenewal(serving, signer *keyPair, h hosts, now time.Time) string {
	switch {
	case serving == nil:
		return "none yet"
	case serving.cert.CheckSignatureFrom(signer.cert) != nil:
		return "not signed by the signing CA"
	case !h.coveredExactlyBy(serving.cert):
		return "names changed to " + h.String()
	case expired(serving.cert, now):
		return "expired"
	case rotationDue(serving.cert, now):
		return "two thirds of its lifetime used"
	}
	return ""
}
