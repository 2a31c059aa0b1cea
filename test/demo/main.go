// Command demo runs chartkind end to end on this machine, with no Docker and no
// cluster: a real kube-apiserver and etcd, the real Flux source-controller and
// helm-controller, the example charts served as a Helm repository on
// 127.0.0.1, and the operator itself. It applies the example definitions and a
// couple of applications, shows them with kubectl, prints a KUBECONFIG to keep
// playing with, and stops everything on Ctrl-C.
//
// Run it with `make demo`, which builds the control plane binaries first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
)

func main() {
	exitWhenReady := flag.Bool("exit", false, "stop once the applications are Ready instead of waiting for Ctrl-C (for CI)")
	timeout := flag.Duration("timeout", 3*time.Minute, "how long to wait for definitions and applications to become Ready")
	flag.Parse()
	if err := run(os.Stdout, *exitWhenReady, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

func run(out io.Writer, exitWhenReady bool, timeout time.Duration) error {
	step := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	root, err := testenv.ModuleRoot()
	if err != nil {
		return err
	}

	step("starting kube-apiserver, etcd, kube-controller-manager, kube-scheduler, KWOK (one simulated node), Flux source-controller and helm-controller")
	begin := time.Now()
	env, stopEnv, err := testenv.StartMain(testenv.Options{Flux: true, Workloads: true, AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme}})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping every process")
		stopEnv()
	}()
	fmt.Fprintf(out, "    control plane up in %s; logs in %s\n", time.Since(begin).Round(100*time.Millisecond), filepath.Join(env.Dir, "logs"))

	repoDir := filepath.Join(env.Dir, "chart-repo")
	if err := os.MkdirAll(repoDir, 0o755); err != nil {
		return err
	}
	chartsDir := filepath.Join(root, "examples", "charts")
	repo, err := testenv.NewChartRepo(chartsDir, repoDir)
	if err != nil {
		return err
	}
	defer repo.Close()
	step("serving examples/charts as a Helm repository at %s", repo.URL)

	// A real third-party chart with real workloads, when ../shared/real-charts
	// is beside the checkout (as on the development machines).
	realCharts := filepath.Join(root, "..", "shared", "real-charts")
	var bitnami *testenv.ChartRepo
	if _, err := os.Stat(filepath.Join(realCharts, "bitnami-nginx", "Chart.yaml")); err == nil {
		dir := filepath.Join(env.Dir, "bitnami-repo")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if bitnami, err = testenv.NewChartRepo(realCharts, dir); err != nil {
			return err
		}
		defer bitnami.Close()
		step("serving the real charts of %s as a Helm repository at %s", realCharts, bitnami.URL)
	} else {
		step("no %s: the real-chart part of the demo is left out", realCharts)
	}

	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "chartkind-system"}}); err != nil {
		return err
	}
	if bitnami != nil {
		if err := c.Create(ctx, &sourcev1.HelmRepository{
			ObjectMeta: metav1.ObjectMeta{Name: "bitnami", Namespace: "chartkind-system"},
			Spec:       sourcev1.HelmRepositorySpec{URL: bitnami.URL, Interval: metav1.Duration{Duration: time.Hour}},
		}); err != nil {
			return err
		}
	}
	if err := c.Create(ctx, &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "chartkind-examples", Namespace: "chartkind-system"},
		Spec:       sourcev1.HelmRepositorySpec{URL: repo.URL, Interval: metav1.Duration{Duration: time.Minute}},
	}); err != nil {
		return err
	}

	logPath := filepath.Join(env.Dir, "logs", "chartkind-operator.log")
	logger, closeLog, err := fileLogger(logPath)
	if err != nil {
		return err
	}
	defer closeLog()
	port, err := freePort()
	if err != nil {
		return err
	}
	// The admission webhook, reached by the API server on 127.0.0.1 with a
	// certificate chartkind issues itself (in a cluster: through a Service).
	webhook := &operator.WebhookOptions{Host: "127.0.0.1", Port: port, URL: fmt.Sprintf("https://127.0.0.1:%d/validate", port), SecretNamespace: "chartkind-system"}
	op, err := operator.New(env.Config, operator.Options{Logger: logger, MetricsBindAddress: "0", HealthProbeBindAddress: "0", Webhook: webhook})
	if err != nil {
		return err
	}
	opCtx, stopOp := context.WithCancel(ctx)
	opDone := make(chan error, 1)
	go func() { opDone <- op.Start(opCtx) }()
	defer func() {
		stopOp()
		<-opDone
	}()
	step("chartkind operator running (log: %s)", logPath)

	kubectl := func(args ...string) error {
		fmt.Fprintf(out, "\n$ kubectl %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, env.KubectlPath, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+env.KubeconfigPath)
		cmd.Stdout, cmd.Stderr = out, out
		return cmd.Run()
	}
	kubectlStdin := func(stdin string, args ...string) error {
		fmt.Fprintf(out, "\n$ kubectl %s <<EOF\n%sEOF\n", strings.Join(args, " "), stdin)
		cmd := exec.CommandContext(ctx, env.KubectlPath, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+env.KubeconfigPath)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Stdout, cmd.Stderr = out, out
		return cmd.Run()
	}
	samples := filepath.Join(root, "config", "samples")
	wait := fmt.Sprintf("--timeout=%s", timeout)
	steps := []func() error{
		func() error {
			return kubectl("apply", "-f", filepath.Join(samples, "chartkind_v1alpha1_applicationdefinition_postgres.yaml"),
				"-f", filepath.Join(samples, "chartkind_v1alpha1_applicationdefinition_redis.yaml"))
		},
		func() error { return kubectl("wait", "--for=condition=Ready", "appdef/postgres", "appdef/redis", wait) },
		func() error { return kubectl("get", "appdefs") },
		func() error {
			return kubectl("apply", "-f", filepath.Join(samples, "apps_v1alpha1_postgres.yaml"), "-f", filepath.Join(samples, "apps_v1alpha1_redis.yaml"))
		},
		func() error {
			return kubectl("wait", "--for=condition=Ready", "postgres/orders", "redis/sessions", wait)
		},
		func() error { return kubectl("get", "apps", "--all-namespaces") },
		func() error { return kubectl("get", "postgreses") },
		func() error { return kubectl("get", "helmreleases", "--all-namespaces") },
		func() error { return kubectl("get", "configmap", "postgres-orders-config", "-o", "jsonpath={.data}") },
		func() error {
			// A server parameter must be a number, string or boolean: a type
			// union no CRD schema can express, so only the admission webhook,
			// which checks the chart's own JSON Schema as Helm does, refuses
			// it before anything is stored.
			fmt.Fprintf(out, "\n# values Helm would refuse are refused at apply time:")
			err := kubectlStdin(invalidPostgres, "apply", "-f", "-")
			if err == nil {
				return errors.New("the invalid Postgres was accepted")
			}
			return nil
		},
	}
	if bitnami != nil {
		steps = append(steps,
			func() error {
				fmt.Fprintf(out, "\n# a real chart (bitnami/nginx) with real workloads: what a user sees")
				return kubectl("apply", "-f", filepath.Join(root, "examples", "real-charts", "nginx-definition.yaml"))
			},
			func() error { return kubectl("wait", "--for=condition=Ready", "appdef/nginx", wait) },
			func() error {
				return kubectl("apply", "-f", filepath.Join(root, "examples", "real-charts", "nginx-web.yaml"))
			},
			func() error { return kubectl("wait", "--for=condition=Ready", "nginx/web", wait) },
			func() error { return kubectl("wait", "--for=condition=Healthy", "nginx/web", wait) },
			func() error { return kubectl("get", "nginx", "-o", "wide") },
			func() error { return kubectl("get", "pods", "-l", "app.kubernetes.io/instance=nginx-web") },
			func() error { return kubectl("describe", "nginx", "web") },
			func() error {
				return kubectl("get", "nginx", "web", "-o", `jsonpath={range .status.access.services[*]}{.name}{"\t"}{.dns}{"\t"}{.ports[*].port}{"\n"}{end}{range .status.access.secrets[*]}secret {.name}: {.keys}{"\n"}{end}`)
			},
		)
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "\n\nchartkind is running. In another terminal:\n\n")
	fmt.Fprintf(out, "    export KUBECONFIG=%s\n", env.KubeconfigPath)
	fmt.Fprintf(out, "    alias kubectl=%s\n", env.KubectlPath)
	fmt.Fprintf(out, "    kubectl explain postgres.spec\n")
	fmt.Fprintf(out, "    kubectl patch postgres orders --type merge -p '{\"spec\":{\"replicas\":4}}'\n")
	fmt.Fprintf(out, "    kubectl get postgres orders -o yaml\n")
	if bitnami != nil {
		fmt.Fprintf(out, "    kubectl annotate nginx web %s=true     # suspend the release; %s- resumes it\n", mirror.AnnotationSuspend, mirror.AnnotationSuspend)
	}
	fmt.Fprintln(out)
	if exitWhenReady {
		step("demo complete (-exit given)")
		return nil
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		fmt.Fprintln(out)
		return nil
	case err := <-opDone:
		opDone <- err
		if err == nil {
			err = errors.New("operator stopped")
		}
		return fmt.Errorf("operator: %w", err)
	}
}

const invalidPostgres = `apiVersion: apps.chartkind.io/v1alpha1
kind: Postgres
metadata:
  name: broken
  namespace: default
spec:
  parameters:
    max_connections: [100, 200]
`

// freePort returns a TCP port free on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// fileLogger writes the operator's structured logs to a file, so the demo's
// console shows only the demo.
func fileLogger(path string) (logr.Logger, func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return logr.Logger{}, nil, err
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(f), zapcore.DebugLevel)
	return zapr.NewLogger(zap.New(core)), func() { _ = f.Close() }, nil
}
