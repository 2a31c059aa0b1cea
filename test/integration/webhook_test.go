package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
	"github.com/chartkind/chartkind/internal/webhook"
)

// whOperator is an operator with the admission webhook enabled, run
// in-process against cfg; stop and start simulate an outage.
type whOperator struct {
	t      *testing.T
	cfg    *rest.Config
	opts   operator.Options
	logs   *testenv.LogBuffer
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
	n      int
}

// startWebhookOperator starts an operator serving the webhook with w, and
// deletes the webhook configuration once the operator has stopped at the end
// of the test (so no other test's requests reach a webhook that is gone).
// Definitions created after it are deleted before it stops.
func startWebhookOperator(t *testing.T, cfg *rest.Config, c client.Client, w operator.WebhookOptions) *whOperator {
	t.Helper()
	t.Cleanup(func() {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: w.ConfigurationName}}
		if err := c.Delete(context.Background(), vwc); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting ValidatingWebhookConfiguration %s: %v", w.ConfigurationName, err)
		}
	})
	o := &whOperator{t: t, cfg: cfg, logs: &testenv.LogBuffer{}, opts: operator.Options{
		ChartsDir:               filepath.Join(env.RootDir, "examples", "charts"),
		MetricsBindAddress:      "0",
		MaxConcurrentReconciles: 2,
		Webhook:                 &w,
	}}
	o.start()
	t.Cleanup(func() {
		o.stop()
		if t.Failed() {
			t.Logf("operator log:\n%s", o.logs.String())
		}
	})
	return o
}

func (o *whOperator) start() {
	o.t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n++
	n := o.n
	opts := o.opts
	opts.Logger = o.logs.Logger(fmt.Sprintf("[op%d] ", n), 1)
	op, err := operator.New(o.cfg, opts)
	if err != nil {
		o.t.Fatalf("operator.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Start(ctx) }()
	o.cancel, o.done = cancel, done
}

func (o *whOperator) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cancel == nil {
		return
	}
	o.cancel()
	select {
	case err := <-o.done:
		if err != nil {
			o.t.Errorf("operator stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		o.t.Errorf("operator did not stop within 30s")
	}
	o.cancel, o.done = nil, nil
}

func (o *whOperator) restart() {
	o.t.Helper()
	o.stop()
	o.start()
}

// selfManaged returns webhook options for chartkind's own certificates, in a
// Secret of a fresh namespace, reached by URL on a free loopback port.
func selfManaged(t *testing.T, configuration string) operator.WebhookOptions {
	t.Helper()
	addr := freeAddr(t)
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	return operator.WebhookOptions{
		Host: host, Port: port, URL: "https://" + addr + "/validate",
		SecretNamespace: newNamespace(t), SecretName: "chartkind-webhook-tls",
		ConfigurationName: configuration,
	}
}

// portsSchema has a oneOf a CRD cannot express: the CRD checks it as anyOf,
// so 2048 (both a port above 1024 and even) passes the CRD and fails Helm.
const portsSchema = `{
  "type": "object",
  "properties": {
    "port": {"oneOf": [{"type": "integer", "minimum": 1024}, {"type": "integer", "multipleOf": 2}]},
    "replicas": {"type": "integer", "minimum": 1}
  }
}`

// whDefinition is a definition of kind with an inline schema, whose CRD goes
// with it.
func whDefinition(name, kind, schema string) *v1alpha1.ApplicationDefinition {
	def := widgetDefinition(name, kind)
	def.Spec.Schema = &apiextensionsv1.JSON{Raw: []byte(schema)}
	def.Spec.DeletionPolicy = v1alpha1.DeletionDelete
	return def
}

func getWebhookConfiguration(ctx context.Context, c client.Client, name string) (*admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhook, error) {
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, types.NamespacedName{Name: name}, cfg); err != nil {
		return nil, nil, err
	}
	for i := range cfg.Webhooks {
		if cfg.Webhooks[i].Name == webhook.WebhookName {
			return cfg, &cfg.Webhooks[i], nil
		}
	}
	return cfg, nil, fmt.Errorf("no webhook %s in %s", webhook.WebhookName, name)
}

func ruleResources(w *admissionregistrationv1.ValidatingWebhook) []string {
	var out []string
	for _, r := range w.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				out = append(out, res+"."+g)
			}
		}
	}
	sort.Strings(out)
	return out
}

// waitWebhookRules waits until chartkind's webhook entry lists exactly resources.
func waitWebhookRules(t *testing.T, c client.Client, name string, resources ...string) *admissionregistrationv1.ValidatingWebhookConfiguration {
	t.Helper()
	sort.Strings(resources)
	var cfg *admissionregistrationv1.ValidatingWebhookConfiguration
	testenv.WaitFor(t, timeout, "webhook rules "+strings.Join(resources, ","), func(ctx context.Context) error {
		var w *admissionregistrationv1.ValidatingWebhook
		var err error
		cfg, w, err = getWebhookConfiguration(ctx, c, name)
		if err != nil {
			return err
		}
		if got := ruleResources(w); strings.Join(got, ",") != strings.Join(resources, ",") {
			return fmt.Errorf("rules name %v", got)
		}
		return nil
	})
	return cfg
}

// dryRunCreate creates an object of def's kind without persisting it: the
// request goes through admission, webhooks included (sideEffects None).
func dryRunCreate(ctx context.Context, c client.Client, def *v1alpha1.ApplicationDefinition, ns, name string, spec map[string]any) error {
	return c.Create(ctx, newObject(def, ns, name, spec), client.DryRunAll)
}

// waitChecked waits until the webhook rejects invalid for def's kind: its
// rule is in the configuration, the API server sees it and the validator is loaded.
func waitChecked(t *testing.T, c client.Client, def *v1alpha1.ApplicationDefinition, ns string, invalid map[string]any) {
	t.Helper()
	testenv.WaitFor(t, timeout, def.Spec.Application.Kind+" checked by the webhook", func(ctx context.Context) error {
		err := dryRunCreate(ctx, c, def, ns, "probe", invalid)
		if err == nil {
			return errors.New("invalid spec admitted")
		}
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "denied the request") {
			return err
		}
		return nil
	})
}

// waitLoaded waits until a valid spec of def's kind is admitted without the
// warning the webhook adds while the kind's validator is not loaded.
func waitLoaded(t *testing.T, cfg *rest.Config, def *v1alpha1.ApplicationDefinition, ns string, valid map[string]any) {
	t.Helper()
	wc, warnings := warningClient(t, cfg)
	testenv.WaitFor(t, timeout, def.Spec.Application.Kind+" validator loaded", func(ctx context.Context) error {
		if err := dryRunCreate(ctx, wc, def, ns, "probe", valid); err != nil {
			return err
		}
		if ws := warnings.take(); len(ws) > 0 {
			return fmt.Errorf("admitted with warnings %q", ws)
		}
		return nil
	})
}

// warningRecorder collects the warnings the API server returns.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

func warningClient(t *testing.T, cfg *rest.Config) (client.Client, *warningRecorder) {
	t.Helper()
	rec := &warningRecorder{}
	c := rest.CopyConfig(cfg)
	c.WarningHandler = rec
	cl, err := client.New(c, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cl, rec
}

func webhookResourceVersions(t *testing.T, w operator.WebhookOptions) string {
	t.Helper()
	cfg, _, err := getWebhookConfiguration(context.Background(), env.Client, w.ConfigurationName)
	if err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: w.SecretNamespace, Name: w.SecretName}, s); err != nil {
		t.Fatal(err)
	}
	return "configuration " + cfg.ResourceVersion + ", secret " + s.ResourceVersion
}

// Served kinds appear in the webhook configuration's rules and leave them
// with their definition. A configuration chartkind creates carries the
// documented settings and the CA bundle of its certificates. An idle
// operator, restarted or not, writes neither the configuration nor the Secret.
func TestWebhookConfigurationFollowsKinds(t *testing.T) {
	w := selfManaged(t, "chartkind-wh-rules")
	op := startWebhookOperator(t, env.Config, env.Client, w)
	ns := newNamespace(t)
	a := createDefinition(t, whDefinition("whrules-a", "WhRulesA", portsSchema))
	b := createDefinition(t, whDefinition("whrules-b", "WhRulesB", portsSchema))
	cfg := waitWebhookRules(t, env.Client, w.ConfigurationName, "whrulesas.apps.chartkind.io", "whrulesbs.apps.chartkind.io")

	var e *admissionregistrationv1.ValidatingWebhook
	for i := range cfg.Webhooks {
		e = &cfg.Webhooks[i]
	}
	if len(cfg.Webhooks) != 1 || ptr.Deref(e.FailurePolicy, "") != admissionregistrationv1.Fail || ptr.Deref(e.SideEffects, "") != admissionregistrationv1.SideEffectClassNone ||
		ptr.Deref(e.MatchPolicy, "") != admissionregistrationv1.Equivalent || ptr.Deref(e.TimeoutSeconds, 0) != 5 ||
		strings.Join(e.AdmissionReviewVersions, ",") != "v1" || len(e.MatchConditions) != 1 || ptr.Deref(e.ClientConfig.URL, "") != w.URL {
		t.Errorf("webhook entry: %+v", e)
	}
	for _, r := range e.Rules {
		if fmt.Sprint(r.Operations) != "[CREATE UPDATE]" {
			t.Errorf("rule %v: operations %v, want CREATE and UPDATE only", r.Resources, r.Operations)
		}
	}
	testenv.WaitFor(t, timeout, "caBundle = the Secret's ca.crt", func(ctx context.Context) error {
		s := &corev1.Secret{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: w.SecretNamespace, Name: w.SecretName}, s); err != nil {
			return err
		}
		_, e, err := getWebhookConfiguration(ctx, env.Client, w.ConfigurationName)
		if err != nil {
			return err
		}
		if len(s.Data["ca.crt"]) == 0 || !bytes.Equal(e.ClientConfig.CABundle, s.Data["ca.crt"]) {
			return fmt.Errorf("caBundle (%d bytes) differs from ca.crt (%d bytes)", len(e.ClientConfig.CABundle), len(s.Data["ca.crt"]))
		}
		return nil
	})
	waitChecked(t, env.Client, a, ns, map[string]any{"port": int64(2048)})
	waitChecked(t, env.Client, b, ns, map[string]any{"port": int64(2048)})

	before := webhookResourceVersions(t, w)
	time.Sleep(short)
	op.restart()
	// Once the restarted operator has loaded its validators, nothing was written.
	waitLoaded(t, env.Config, a, ns, map[string]any{"port": int64(1025)})
	waitLoaded(t, env.Config, b, ns, map[string]any{"port": int64(1025)})
	time.Sleep(short)
	if after := webhookResourceVersions(t, w); after != before {
		t.Errorf("idle and restarted operator wrote: %s, then %s", before, after)
	}

	deleteDefinition(t, b.Name)
	waitWebhookRules(t, env.Client, w.ConfigurationName, "whrulesas.apps.chartkind.io")
	deleteDefinition(t, a.Name)
	waitWebhookRules(t, env.Client, w.ConfigurationName)
}

// The webhook rejects what Helm would reject and the CRD cannot: a value
// outside a type union (the postgres example chart's parameters) and a oneOf
// matched twice. The rejection reads like the API server's own validation
// errors, in the client and in kubectl, naming the field.
func TestWebhookRejectsWhatHelmRejects(t *testing.T) {
	w := selfManaged(t, "chartkind-wh-reject")
	startWebhookOperator(t, env.Config, env.Client, w)
	ns := newNamespace(t)
	pgDef := widgetDefinition("whpostgres", "WhPostgres")
	pgDef.Spec.Schema = nil // the chart's values.schema.json and values.yaml
	pgDef.Spec.Release.Chart.Name, pgDef.Spec.Release.Chart.Version = "postgres", ">=0.1.0"
	pgDef.Spec.DeletionPolicy = v1alpha1.DeletionDelete
	pg := createDefinition(t, pgDef)
	ports := createDefinition(t, whDefinition("whports", "WhPorts", portsSchema))
	badParams := map[string]any{"parameters": map[string]any{"max_connections": []any{int64(1)}}}
	waitChecked(t, env.Client, pg, ns, badParams)
	waitChecked(t, env.Client, ports, ns, map[string]any{"port": int64(2048)})
	ctx := ctxT(t)
	before := counterValue(t, "chartkind_admission_requests_total", map[string]string{"kind": "WhPostgres", "operation": "CREATE", "verdict": "denied"})

	err := env.Client.Create(ctx, newObject(pg, ns, "bad", badParams))
	wantPrefix := `admission webhook "validate.chartkind.io" denied the request: WhPostgres.apps.chartkind.io "bad" is invalid: `
	if !apierrors.IsInvalid(err) || !strings.HasPrefix(err.Error(), wantPrefix) || !strings.Contains(err.Error(), "spec.parameters.max_connections") {
		t.Fatalf("create with a value outside the type union: %v\nwant an Invalid error starting %q naming spec.parameters.max_connections", err, wantPrefix)
	}
	t.Logf("client sees: %v", err)
	if d := err.(apierrors.APIStatus).Status().Details; d == nil || len(d.Causes) != 1 || d.Causes[0].Field != "spec.parameters.max_connections" {
		t.Errorf("status details: %+v, want one cause at spec.parameters.max_connections", d)
	}
	if _, err := getObject(ctx, pg, ns, "bad"); !apierrors.IsNotFound(err) {
		t.Errorf("rejected object exists: %v", err)
	}
	if got := counterValue(t, "chartkind_admission_requests_total", map[string]string{"kind": "WhPostgres", "operation": "CREATE", "verdict": "denied"}) - before; got != 1 {
		t.Errorf("denied requests counted: %v, want 1", got)
	}

	// kubectl prints it as it prints the API server's own validation errors.
	manifest, _ := yaml.Marshal(newObject(pg, ns, "bad-kubectl", badParams).Object)
	cmd := exec.Command(env.KubectlPath, "--kubeconfig", env.KubeconfigPath, "create", "-f", "-")
	cmd.Stdin = bytes.NewReader(manifest)
	out, kerr := cmd.CombinedOutput()
	if kerr == nil || !strings.Contains(string(out), `The WhPostgres "bad-kubectl" is invalid: spec.parameters.max_connections: Invalid value: [1]`) {
		t.Errorf("kubectl create: %v\n%s", kerr, out)
	}
	t.Logf("kubectl shows: %s", out)

	// Valid values pass; an update to invalid ones is rejected.
	createObject(t, pg, ns, "good", map[string]any{"replicas": int64(3), "parameters": map[string]any{"max_connections": int64(200)}})
	// The operator writes the object's status meanwhile: a conflict is
	// retried on the object as it is now.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		good, err := getObject(ctx, pg, ns, "good")
		if err != nil {
			return err
		}
		if err := unstructured.SetNestedField(good.Object, []any{"x"}, "spec", "parameters", "max_connections"); err != nil {
			return err
		}
		return env.Client.Update(ctx, good)
	})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.parameters.max_connections") {
		t.Errorf("update to an invalid spec: %v", err)
	}

	// The oneOf the CRD checks as anyOf.
	err = env.Client.Create(ctx, newObject(ports, ns, "both", map[string]any{"port": int64(2048)}))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `WhPorts.apps.chartkind.io "both" is invalid`) || !strings.Contains(err.Error(), "spec.port") {
		t.Errorf("create with a port matching both oneOf branches: %v", err)
	}
	t.Logf("oneOf: %v", err)
	createObject(t, ports, ns, "one", map[string]any{"port": int64(1025)})

	logLatency(t, "WhPostgres")
}

// An object valid under the old schema but not under the new one can still
// get labels and annotations (and lose finalizers): updates that leave spec
// alone are not checked. Changing its spec is checked against the new schema.
func TestWebhookMetadataUpdateOfObjectInvalidUnderNewSchema(t *testing.T) {
	w := selfManaged(t, "chartkind-wh-schema")
	startWebhookOperator(t, env.Config, env.Client, w)
	ns := newNamespace(t)
	def := createDefinition(t, whDefinition("whschema", "WhSchema", `{"type":"object","properties":{"port":{"type":"integer"},"note":{"type":"string"}}}`))
	waitLoaded(t, env.Config, def, ns, map[string]any{"port": int64(2048)})
	createObject(t, def, ns, "old", map[string]any{"port": int64(2048)})

	testenv.WaitFor(t, timeout, "the definition's new schema written", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(def), def); err != nil {
			return err
		}
		def.Spec.Schema = &apiextensionsv1.JSON{Raw: []byte(portsSchema)}
		return env.Client.Update(ctx, def)
	})
	waitChecked(t, env.Client, def, ns, map[string]any{"port": int64(2048)})

	ctx := ctxT(t)
	u := mustGetObject(t, def, ns, "old")
	u.SetLabels(map[string]string{"team": "payments"})
	u.SetAnnotations(map[string]string{"note": "metadata only"})
	u.SetFinalizers([]string{"example.com/hold"})
	if err := env.Client.Update(ctx, u); err != nil {
		t.Fatalf("metadata-only update of an object the new schema rejects: %v", err)
	}
	u.SetFinalizers(nil)
	if err := env.Client.Update(ctx, u); err != nil {
		t.Fatalf("finalizer removal: %v", err)
	}
	if err := unstructured.SetNestedField(u.Object, "changed", "spec", "note"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Update(ctx, u); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.port") {
		t.Errorf("spec update keeping an invalid port: %v, want rejected naming spec.port", err)
	}
}

// With failurePolicy Fail, while the operator is down, creates and spec
// changes fail with an error naming the webhook; updates that leave spec
// alone and deletes go through. Once it is back, creates work again.
func TestWebhookOperatorDown(t *testing.T) {
	w := selfManaged(t, "chartkind-wh-down")
	op := startWebhookOperator(t, env.Config, env.Client, w)
	ns := newNamespace(t)
	def := createDefinition(t, whDefinition("whdown", "WhDown", portsSchema))
	waitChecked(t, env.Client, def, ns, map[string]any{"port": int64(2048)})
	createObject(t, def, ns, "before", map[string]any{"port": int64(1025)})
	createObject(t, def, ns, "doomed", map[string]any{"port": int64(1025)})

	op.stop()
	ctx := ctxT(t)
	err := env.Client.Create(ctx, newObject(def, ns, "during", map[string]any{"port": int64(1025)}))
	if err == nil || !strings.Contains(err.Error(), `failed calling webhook "validate.chartkind.io"`) {
		t.Fatalf("create while the operator is down: %v, want an error naming the webhook", err)
	}
	t.Logf("while the operator is down, users see: %v", err)
	u := mustGetObject(t, def, ns, "before")
	if err := unstructured.SetNestedField(u.Object, int64(1027), "spec", "port"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Update(ctx, u); err == nil || !strings.Contains(err.Error(), "validate.chartkind.io") {
		t.Errorf("spec update while the operator is down: %v, want an error naming the webhook", err)
	}
	u = mustGetObject(t, def, ns, "before")
	u.SetLabels(map[string]string{"during": "outage"})
	if err := env.Client.Update(ctx, u); err != nil {
		t.Errorf("label update while the operator is down: %v", err)
	}
	if err := env.Client.Delete(ctx, newObject(def, ns, "doomed", nil)); err != nil {
		t.Errorf("delete while the operator is down: %v", err)
	}

	op.start()
	testenv.WaitFor(t, timeout, "creates to work again", func(ctx context.Context) error {
		return env.Client.Create(ctx, newObject(def, ns, "after", map[string]any{"port": int64(1025)}))
	})
}

// Certificates rotate (serving every few seconds, the CA every ten) while
// objects are created continuously: not one request fails for any other
// reason than the invalid values it carries, every new connection trusting
// the configuration's caBundle of the moment verifies the served certificate,
// and the webhook serves each new certificate without a restart.
func TestWebhookCertificateRotation(t *testing.T) {
	w := selfManaged(t, "chartkind-wh-rotate")
	w.CALifetime, w.CertLifetime, w.CAPropagationDelay, w.CertCheckInterval = 15*time.Second, 6*time.Second, time.Second, 250*time.Millisecond
	startWebhookOperator(t, env.Config, env.Client, w)
	ns := newNamespace(t)
	def := createDefinition(t, whDefinition("whrotate", "WhRotate", portsSchema))
	waitChecked(t, env.Client, def, ns, map[string]any{"port": int64(2048)})

	// Requests are made for 40 s; each has its own, longer, deadline, so that
	// the end of the period cuts none short (a client that gives up before
	// sending is no admission failure).
	end := time.Now().Add(40 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	signers, secretServing, served := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	var handshakeFailures []string
	go func() {
		// Watch the Secret, and connect as the API server would on a new
		// connection: trusting only the caBundle the configuration holds at
		// that moment. (The API server itself reuses its connection while
		// traffic flows and only reconnects when the caBundle changes, so
		// admission traffic alone would not notice a certificate it cannot
		// verify until then.)
		defer wg.Done()
		for ctx.Err() == nil {
			s := &corev1.Secret{}
			if err := env.Client.Get(ctx, types.NamespacedName{Namespace: w.SecretNamespace, Name: w.SecretName}, s); err == nil {
				mu.Lock()
				signers[fingerprintPEM(s.Data[webhook.KeySignerCert])] = true
				secretServing[fingerprintPEM(s.Data[webhook.KeyServingCert])] = true
				mu.Unlock()
			}
			_, e, err := getWebhookConfiguration(ctx, env.Client, w.ConfigurationName)
			if err != nil {
				continue
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(e.ClientConfig.CABundle)
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", net.JoinHostPort(w.Host, strconv.Itoa(w.Port)), &tls.Config{RootCAs: roots})
			mu.Lock()
			if err != nil {
				if ctx.Err() == nil {
					handshakeFailures = append(handshakeFailures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
				}
			} else {
				sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
				served[fmt.Sprintf("%x", sum[:8])] = true
				_ = conn.Close()
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()

	var failures []string
	allowed, denied, created := 0, 0, 0
	for i := 0; time.Now().Before(end); i++ {
		port, valid := int64(1025+2*(i%50)), i%2 == 0 // odd ports: one oneOf branch
		if !valid {
			port = 2048
		}
		reqCtx, reqCancel := context.WithTimeout(ctx, 30*time.Second)
		var err error
		if valid && i%40 == 0 {
			err = env.Client.Create(reqCtx, newObject(def, ns, fmt.Sprintf("r%d", i), map[string]any{"port": port}))
			created++
		} else {
			err = dryRunCreate(reqCtx, env.Client, def, ns, fmt.Sprintf("r%d", i), map[string]any{"port": port})
		}
		reqCancel()
		switch {
		case valid && err == nil:
			allowed++
		case !valid && apierrors.IsInvalid(err) && strings.Contains(err.Error(), "denied the request") && strings.Contains(err.Error(), "spec.port"):
			denied++
		default:
			failures = append(failures, fmt.Sprintf("%s request %d (valid=%v): %v", time.Now().Format("15:04:05.000"), i, valid, err))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	t.Logf("during rotation: %d allowed (%d persisted), %d denied as invalid, %d failures, %d failed handshakes; %d signing CAs, %d serving certificates in the Secret, %d served",
		allowed, created, denied, len(failures), len(handshakeFailures), len(signers), len(secretServing), len(served))
	if len(failures) > 0 {
		t.Errorf("%d admission failures during rotation, e.g.:\n%s", len(failures), strings.Join(failures[:min(5, len(failures))], "\n"))
	}
	if len(handshakeFailures) > 0 {
		t.Errorf("%d connections trusting the configuration's caBundle failed, e.g.:\n%s", len(handshakeFailures), strings.Join(handshakeFailures[:min(5, len(handshakeFailures))], "\n"))
	}
	if allowed < 100 || denied < 100 {
		t.Errorf("only %d allowed and %d denied requests: not enough traffic to judge", allowed, denied)
	}
	if len(signers) < 3 || len(secretServing) < 6 || len(served) < 5 {
		t.Errorf("rotation too slow to test anything: %d signing CAs, %d serving certificates, %d served", len(signers), len(secretServing), len(served))
	}
	logLatency(t, "WhRotate")
}

// Certificates from elsewhere (cert-manager, here envtest's
// WebhookInstallOptions): the configuration is installed beforehand with its
// own clientConfig and caBundle; chartkind only applies the rules, serves the
// certificate in the directory and reloads it when it changes, and leaves the
// caBundle to its injector.
func TestWebhookExternalCertificates(t *testing.T) {
	const name = "chartkind-external"
	failFast := admissionregistrationv1.Fail
	own := testenv.Start(t, testenv.Options{
		AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme},
		Webhooks: envtest.WebhookInstallOptions{ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{webhook.CAInjectAnnotation: "chartkind-system/chartkind-webhook"}},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name: webhook.WebhookName,
				// envtest points this at its local URL: https://<host>:<port>/validate.
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "chartkind-system", Name: "chartkind-webhook", Path: ptr.To("validate")}},
				FailurePolicy:           &failFast,
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				AdmissionReviewVersions: []string{"v1"},
				MatchConditions:         []admissionregistrationv1.MatchCondition{webhook.SpecChangedCondition},
			}},
		}}},
	})
	wo := own.Webhooks
	startWebhookOperator(t, own.Config, own.Client, operator.WebhookOptions{
		CertDir: wo.LocalServingCertDir, Host: wo.LocalServingHost, Port: wo.LocalServingPort, ConfigurationName: name,
	})
	installed, _, err := getWebhookConfiguration(context.Background(), own.Client, name)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := own.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	def := whDefinition("whexternal", "WhExternal", portsSchema)
	if err := own.Client.Create(context.Background(), def); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = own.Client.Delete(context.Background(), def) })
	waitWebhookRules(t, own.Client, name, "whexternals.apps.chartkind.io")
	waitChecked(t, own.Client, def, ns.Name, map[string]any{"port": int64(2048)})
	cfg, e, err := getWebhookConfiguration(context.Background(), own.Client, name)
	if err != nil {
		t.Fatal(err)
	}
	ie := installed.Webhooks[0]
	if !bytes.Equal(e.ClientConfig.CABundle, ie.ClientConfig.CABundle) || ptr.Deref(e.ClientConfig.URL, "") != ptr.Deref(ie.ClientConfig.URL, "") {
		t.Errorf("chartkind changed the clientConfig it does not own: %+v", e.ClientConfig)
	}
	if cfg.Annotations[webhook.CAInjectAnnotation] == "" {
		t.Error("the cert-manager annotation was dropped")
	}

	// cert-manager renews: its CA injector adds the new CA to caBundle, then
	// the mounted Secret changes. chartkind serves the new certificate
	// without a restart and keeps the injected caBundle when it applies rules.
	certPEM, keyPEM, caPEM := issueTestCertificate(t, wo.LocalServingHost)
	patch := client.MergeFrom(cfg.DeepCopy())
	cfg.Webhooks[0].ClientConfig.CABundle = append(append([]byte{}, ie.ClientConfig.CABundle...), caPEM...)
	if err := own.Client.Patch(context.Background(), cfg, patch, client.FieldOwner("cainjector")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the API server picks the configuration up
	writeAtomically(t, filepath.Join(wo.LocalServingCertDir, "tls.key"), keyPEM)
	writeAtomically(t, filepath.Join(wo.LocalServingCertDir, "tls.crt"), certPEM)
	newCert, _ := pem.Decode(certPEM)
	testenv.WaitFor(t, timeout, "the renewed certificate to be served", func(context.Context) error {
		conn, err := tls.Dial("tcp", net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reads the served certificate
		if err != nil {
			return err
		}
		defer conn.Close()
		if !bytes.Equal(conn.ConnectionState().PeerCertificates[0].Raw, newCert.Bytes) {
			return errors.New("still serving the old certificate")
		}
		return nil
	})
	def2 := whDefinition("whexternal2", "WhExternalTwo", portsSchema)
	if err := own.Client.Create(context.Background(), def2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = own.Client.Delete(context.Background(), def2) })
	waitWebhookRules(t, own.Client, name, "whexternals.apps.chartkind.io", "whexternaltwos.apps.chartkind.io")
	waitChecked(t, own.Client, def2, ns.Name, map[string]any{"port": int64(2048)})
	if _, e, err := getWebhookConfiguration(context.Background(), own.Client, name); err != nil || !bytes.Contains(e.ClientConfig.CABundle, caPEM) {
		t.Errorf("injected caBundle not kept (err %v)", err)
	}
	if err := own.Client.Create(context.Background(), newObject(def, ns.Name, "ok", map[string]any{"port": int64(1025)})); err != nil {
		t.Errorf("create with the renewed certificate: %v", err)
	}
	// Before the environment stops: definitions go while the operator runs.
	for _, d := range []*v1alpha1.ApplicationDefinition{def, def2} {
		_ = own.Client.Delete(context.Background(), d)
		testenv.WaitFor(t, timeout, "definition "+d.Name+" deleted", func(ctx context.Context) error {
			err := own.Client.Get(ctx, client.ObjectKeyFromObject(d), &v1alpha1.ApplicationDefinition{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there: %v", err)
		})
	}
}

func fingerprintPEM(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:8])
}

func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// issueTestCertificate returns a serving certificate for host, its key and
// the PEM of the new CA that signed it, as cert-manager would issue them.
func issueTestCertificate(t *testing.T, host string) (certPEM, keyPEM, caPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-issuer"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP(host)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

// counterValue sums the counter samples of name whose labels include labels.
func counterValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mf := gather(t)[name]
	total := 0.0
	for _, m := range mf.GetMetric() {
		match := true
		for k, v := range labels {
			if labelOf(m, k) != v {
				match = false
			}
		}
		if match {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// logLatency logs the handler's p50 and p99 for kind, from the histogram
// (bucket upper bounds), for the record: no assertion on timings.
func logLatency(t *testing.T, kind string) {
	t.Helper()
	mf := gather(t)["chartkind_admission_duration_seconds"]
	for _, m := range mf.GetMetric() {
		if labelOf(m, "kind") != kind {
			continue
		}
		h := m.GetHistogram()
		t.Logf("%s admission latency over %d requests: p50 <= %s, p99 <= %s", kind, h.GetSampleCount(), quantile(h, 0.5), quantile(h, 0.99))
	}
}

func quantile(h *dto.Histogram, q float64) string {
	want := q * float64(h.GetSampleCount())
	for _, b := range h.GetBucket() {
		if float64(b.GetCumulativeCount()) >= want {
			return (time.Duration(b.GetUpperBound() * float64(time.Second))).String()
		}
	}
	return "+Inf"
}
