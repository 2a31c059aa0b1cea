package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

type started struct {
	op     *operator.Operator
	cancel context.CancelFunc
	done   chan error
}

func startWith(t *testing.T, opts operator.Options) *started {
	t.Helper()
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	if opts.MetricsBindAddress == "" {
		opts.MetricsBindAddress = "0"
	}
	op, err := operator.New(env.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{op: op, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- op.Start(ctx) }()
	t.Cleanup(s.stop)
	return s
}

func (s *started) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
}

// The operator serves /healthz, /readyz and Prometheus metrics on the
// configured addresses.
func TestOperatorEndpoints(t *testing.T) {
	probe, metricsAddr := freeAddr(t), freeAddr(t)
	startWith(t, operator.Options{HealthProbeBindAddress: probe, MetricsBindAddress: metricsAddr})
	for _, path := range []string{"/healthz", "/readyz"} {
		testenv.WaitFor(t, timeout, path, func(ctx context.Context) error {
			code, body, err := httpGet(ctx, "http://"+probe+path)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("%d: %s", code, body)
			}
			return nil
		})
	}
	testenv.WaitFor(t, timeout, "metrics", func(ctx context.Context) error {
		code, body, err := httpGet(ctx, "http://"+metricsAddr+"/metrics")
		if err != nil {
			return err
		}
		if code != http.StatusOK || !strings.Contains(body, "chartkind_served_kinds") || !strings.Contains(body, "chartkind_queue_depth") {
			return fmt.Errorf("%d, chartkind metrics missing", code)
		}
		return nil
	})
}

// With leader election, only the leader serves kinds; when it stops, the
// other replica takes over.
func TestLeaderElection(t *testing.T) {
	leNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "le-"}}
	if err := env.Client.Create(context.Background(), leNS); err != nil {
		t.Fatal(err)
	}
	opts := operator.Options{LeaderElection: true, LeaderElectionNamespace: leNS.Name, LeaderElectionID: "chartkind-test"}
	a := startWith(t, opts)
	ns := newNamespace(t)
	def := widgetDefinition("electwidget", "ElectWidget")
	if err := env.Client.Create(context.Background(), def); err != nil {
		t.Fatal(err)
	}
	def = waitDefinitionReason(t, def.Name, "Serving")
	b := startWith(t, opts)
	t.Cleanup(func() { deleteDefinition(t, def.Name) }) // runs before b stops
	time.Sleep(short)
	if !a.op.Serving(def.Name) || b.op.Serving(def.Name) {
		t.Fatalf("serving: a=%v b=%v, want only the leader a", a.op.Serving(def.Name), b.op.Serving(def.Name))
	}
	a.stop()
	testenv.WaitFor(t, timeout, "b to take over", func(context.Context) error {
		if !b.op.Serving(def.Name) {
			return fmt.Errorf("b not serving")
		}
		return nil
	})
	createObject(t, def, ns, "led", map[string]any{"replicas": int64(1)})
	waitRelease(t, ns, "electwidget-led", nil)
}

// A definition whose chartRef names a missing OCIRepository says so
// (SourceNotFound); with an inline schema it is served anyway and its
// HelmReleases use the chartRef.
func TestChartRefDefinition(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	noSchema := widgetDefinition("refnoschema", "RefNoSchema")
	noSchema.Spec.Schema = nil
	noSchema.Spec.Release.Chart = nil
	noSchema.Spec.Release.ChartRef = &helmv2.CrossNamespaceSourceReference{Kind: "OCIRepository", Name: "widget", Namespace: "flux-system"}
	if err := env.Client.Create(context.Background(), noSchema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, noSchema.Name) })
	waitDefinitionReason(t, noSchema.Name, "SourceNotFound")

	def := widgetDefinition("refwidget", "RefWidget")
	def.Spec.Release.Chart = nil
	def.Spec.Release.ChartRef = &helmv2.CrossNamespaceSourceReference{Kind: "OCIRepository", Name: "widget", Namespace: "flux-system"}
	def = createDefinition(t, def)
	createObject(t, def, ns, "r", map[string]any{"replicas": int64(2)})
	waitRelease(t, ns, "refwidget-r", func(hr *helmv2.HelmRelease) error {
		if hr.Spec.Chart != nil || hr.Spec.ChartRef == nil || hr.Spec.ChartRef.Name != "widget" || hr.Spec.ChartRef.Kind != "OCIRepository" {
			return fmt.Errorf("chart %+v chartRef %+v", hr.Spec.Chart, hr.Spec.ChartRef)
		}
		return nil
	})
}
