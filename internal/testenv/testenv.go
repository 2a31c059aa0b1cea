package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options selects what runs besides kube-apiserver and etcd. The zero value is a bare API server
// with the Flux and chartkind CRDs installed.
type Options struct {
	// ControllerManager also runs kube-controller-manager with only the garbage collector, the
	// namespace controller and clusterrole aggregation, for tests that need ownerReferences to
	// cascade or namespaces to actually go away.
	ControllerManager bool

	// Workloads makes Deployments, StatefulSets, Jobs and their Pods behave as in a real cluster,
	// without a kubelet: it runs kube-controller-manager with every controller but the
	// ServiceAccount token controller (instead of ControllerManager's reduced set, so it implies
	// ControllerManager), kube-scheduler, and KWOK, which simulates one Node (Env.NodeName) and
	// the Pods bound to it (Running and Ready at once; Job Pods then Succeeded). Start returns
	// once the Node is Ready and the scheduler has scheduled a probe Pod onto it. No volume is
	// provisioned: create PersistentVolumes with Env.CreatePersistentVolumes for
	// volumeClaimTemplates. Pods never really run: no container, no probe, no log, no exec.
	Workloads bool

	// NodeResources overrides or extends the capacity (and allocatable) of the Workloads Node:
	// by default cpu 32, memory 256Gi, pods 110 and ephemeral-storage 500Gi.
	NodeResources corev1.ResourceList

	// Flux also runs source-controller and helm-controller, watching all namespaces, so that
	// HelmRepositories are fetched and HelmReleases installed by Helm for real.
	Flux bool

	// SourceControllerArgs and HelmControllerArgs are appended to the flags this package passes
	// (later flags win), e.g. "--concurrent=8" or "--log-level=debug".
	SourceControllerArgs []string
	HelmControllerArgs   []string

	// CRDDirectoryPaths are installed in addition to bin/flux/crds and config/crd/bases.
	CRDDirectoryPaths []string
	// CRDs are installed in addition to the CRD directories.
	CRDs []*apiextensionsv1.CustomResourceDefinition

	// AddToScheme registers more types (e.g. chartkind's api/v1alpha1 AddToScheme) with the
	// scheme of Env.Client, on top of client-go's built-in types, apiextensions/v1, Flux
	// helm-controller v2 and source-controller v1.
	AddToScheme []func(*runtime.Scheme) error

	// Webhooks are admission webhook configurations envtest installs once the API server is up:
	// it generates a CA and serving certificate and points each webhook's clientConfig (a Service
	// with a path) at https://127.0.0.1:<port>/<path>. Env.Webhooks then says where to serve them
	// (LocalServingHost, LocalServingPort, LocalServingCertDir with tls.crt and tls.key).
	Webhooks envtest.WebhookInstallOptions

	// StartTimeout bounds the start of each component. Default: 90s (generous because the CI
	// machines have 2 cores and run several test packages in parallel).
	StartTimeout time.Duration
}

// Env is a running control plane. Its fields are read-only.
type Env struct {
	// Config is an admin (system:masters) client configuration for the API server.
	Config *rest.Config
	// Client is a controller-runtime client (uncached: reads go straight to the API server, so
	// tests never see stale objects) using Scheme.
	Client client.Client
	// Scheme knows client-go's types, apiextensions/v1, Flux helmv2 and sourcev1, and
	// Options.AddToScheme.
	Scheme *runtime.Scheme
	// KubeconfigPath is an admin kubeconfig file for kubectl, helm or a controller run as a child
	// process (KUBECONFIG=...).
	KubeconfigPath string
	// Dir is this environment's temporary directory (logs, etcd data, certificates, storage),
	// removed by Stop unless TESTENV_KEEP=1.
	Dir string
	// RootDir is the chartkind module root, where bin/ and config/ are found.
	RootDir string
	// KubectlPath is the pinned kubectl (bin/k8s/kubectl), matching the API server's version.
	KubectlPath string
	// SourceControllerStorageURL is source-controller's artifact server (when Options.Flux).
	SourceControllerStorageURL string
	// Webhooks are the installed Options.Webhooks, with the address and certificates to serve them.
	Webhooks *envtest.WebhookInstallOptions
	// NodeName is the Node simulated by KWOK (when Options.Workloads): annotated
	// kwok.x-k8s.io/node=fake, labelled kubernetes.io/hostname=<NodeName>, kubernetes.io/os=linux
	// and kubernetes.io/arch=amd64, untainted, with Options.NodeResources.
	NodeName string

	envtest  *envtest.Environment
	watchdog *watchdog
	children []*child // our own children, in start order
	// groups are the process groups of every process of this environment, envtest's included.
	groups    []int
	logs      []namedLog
	openFiles []*os.File

	stopOnce sync.Once
	stopErr  error

	volumes atomic.Int64 // PersistentVolumes created by CreatePersistentVolumes
}

type namedLog struct{ name, path string }

// Binary locations relative to the module root, as produced by hack/testbin.sh.
const (
	k8sBinDir     = "bin/k8s"
	kwokBinDir    = "bin/kwok"
	fluxBinDir    = "bin/flux"
	fluxCRDDir    = "bin/flux/crds"
	chartkindCRDs = "config/crd/bases"
)

// envtestStartMu serialises envtest start-ups within the test binary, so that the new
// kube-apiserver and etcd children of this process can be attributed to the right Env.
var envtestStartMu sync.Mutex

// Start starts a control plane for the test and stops it in t.Cleanup, after printing the
// components' logs if the test failed. A component that cannot start, or a binary missing from
// bin/, fails the test: integration tests never skip.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	begin := time.Now()
	env, err := start(opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			env.logTails(t, nil)
		}
		if err := env.Stop(); err != nil {
			t.Errorf("testenv: stop: %v", err)
		}
	})
	t.Logf("testenv: control plane up in %s (%s)", time.Since(begin).Round(time.Millisecond), env.describe())
	return env
}

// StartMain is Start for TestMain, where there is no *testing.T: one environment shared by all
// tests of a package. The caller must call stop (also on failure paths) before os.Exit; if the
// test binary dies without calling it, the watchdog still kills every component. Call
// env.DumpLogs(os.Stderr) first when m.Run() failed, or env.LogOnFailure(t) in each test.
func StartMain(opts Options) (env *Env, stop func(), err error) {
	env, err = start(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("testenv: %w", err)
	}
	return env, func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stop: %v\n", err)
		}
	}, nil
}

func (e *Env) describe() string {
	parts := []string{"kube-apiserver " + e.Config.Host}
	for _, c := range e.children {
		parts = append(parts, c.name)
	}
	return strings.Join(parts, ", ")
}

func start(opts Options) (*Env, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	return startIn(root, opts)
}

// startIn starts an environment using the binaries and CRDs of the module rooted at root.
func startIn(root string, opts Options) (_ *Env, err error) {
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 90 * time.Second
	}
	bins := map[string]string{
		"kube-apiserver": filepath.Join(root, k8sBinDir, "kube-apiserver"),
		"etcd":           filepath.Join(root, k8sBinDir, "etcd"),
		"kubectl":        filepath.Join(root, k8sBinDir, "kubectl"),
	}
	if opts.ControllerManager || opts.Workloads {
		bins["kube-controller-manager"] = filepath.Join(root, k8sBinDir, "kube-controller-manager")
	}
	if opts.Workloads {
		bins["kube-scheduler"] = filepath.Join(root, k8sBinDir, "kube-scheduler")
		bins["kwok"] = filepath.Join(root, kwokBinDir, "kwok")
	}
	if opts.Flux {
		bins["source-controller"] = filepath.Join(root, fluxBinDir, "source-controller")
		bins["helm-controller"] = filepath.Join(root, fluxBinDir, "helm-controller")
	}
	var missing []string
	for name, p := range bins {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	crdFiles, _ := filepath.Glob(filepath.Join(root, fluxCRDDir, "*.yaml"))
	if len(crdFiles) == 0 {
		missing = append(missing, "Flux CRDs ("+fluxCRDDir+")")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing %s under %s: run `make testbin` (hack/testbin.sh) to build them", strings.Join(missing, ", "), filepath.Join(root, "bin"))
	}

	scheme, err := NewScheme(opts.AddToScheme...)
	if err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp("", "chartkind-testenv-")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, RootDir: root, Scheme: scheme, KubectlPath: bins["kubectl"]}
	defer func() {
		if err != nil {
			// Tell the caller what the components said before they were stopped.
			var b strings.Builder
			e.writeTails(&b, nil, 40)
			_ = e.Stop()
			err = fmt.Errorf("%w\n%s", err, b.String())
		}
	}()

	if e.watchdog, err = startWatchdog(); err != nil {
		return e, err
	}
	if os.Getenv("TESTENV_KEEP") != "1" {
		if err := e.watchdog.watchDir(dir); err != nil {
			return e, err
		}
	}
	for _, sub := range []string{"logs", "apiserver", "etcd"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return e, err
		}
	}

	if err := e.startAPIServer(opts, bins); err != nil {
		return e, err
	}
	if opts.Workloads {
		if err := e.startWorkloads(opts, bins); err != nil {
			return e, err
		}
	} else if opts.ControllerManager {
		if err := e.startControllerManager(opts, bins["kube-controller-manager"]); err != nil {
			return e, err
		}
	}
	if opts.Flux {
		if err := e.startFlux(opts, bins["source-controller"], bins["helm-controller"]); err != nil {
			return e, err
		}
	}
	return e, nil
}

func (e *Env) logFile(name string) (string, *os.File, error) {
	p := filepath.Join(e.Dir, "logs", name+".log")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", nil, err
	}
	e.logs = append(e.logs, namedLog{name: name, path: p})
	return p, f, nil
}

func (e *Env) startAPIServer(opts Options, bins map[string]string) error {
	_, apiLog, err := e.logFile("kube-apiserver")
	if err != nil {
		return err
	}
	_, etcdLog, err := e.logFile("etcd")
	if err != nil {
		return err
	}
	// envtest writes to them until it has stopped kube-apiserver and etcd; Stop closes them.
	e.openFiles = append(e.openFiles, apiLog, etcdLog)

	crdPaths := []string{filepath.Join(e.RootDir, fluxCRDDir)}
	if fi, err := os.Stat(filepath.Join(e.RootDir, chartkindCRDs)); err == nil && fi.IsDir() {
		crdPaths = append(crdPaths, filepath.Join(e.RootDir, chartkindCRDs))
	}
	crdPaths = append(crdPaths, opts.CRDDirectoryPaths...)

	te := &envtest.Environment{
		BinaryAssetsDirectory: filepath.Join(e.RootDir, k8sBinDir),
		CRDDirectoryPaths:     crdPaths,
		CRDs:                  opts.CRDs,
		// Explicitly requested extra paths must exist; the defaults were checked above.
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: opts.StartTimeout,
		ControlPlaneStopTimeout:  stopGracePeriod * 2,
		Scheme:                   e.Scheme,
		WebhookInstallOptions:    opts.Webhooks,
	}
	// Absolute paths, so that KUBEBUILDER_ASSETS or TEST_ASSET_* in the caller's environment
	// cannot swap the pinned binaries for others.
	te.ControlPlane.APIServer = &envtest.APIServer{
		Path:    bins["kube-apiserver"],
		CertDir: filepath.Join(e.Dir, "apiserver"),
		Out:     outputWriter("kube-apiserver", apiLog),
		Err:     outputWriter("kube-apiserver", apiLog),
	}
	te.ControlPlane.Etcd = &envtest.Etcd{
		Path:    bins["etcd"],
		DataDir: filepath.Join(e.Dir, "etcd"),
		Out:     outputWriter("etcd", etcdLog),
		Err:     outputWriter("etcd", etcdLog),
	}
	// etcd refuses writes ("database space exceeded") once its backend
	// reaches the quota, 2 GiB by default: a bench at 100,000 objects and
	// their HelmReleases gets near that before the API server compacts.
	te.ControlPlane.Etcd.Configure().Set("quota-backend-bytes", "8589934592")
	te.ControlPlane.KubectlPath = bins["kubectl"]

	envtestStartMu.Lock()
	before := map[string]map[int]bool{}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		before[name], _ = childrenWithExe(bins[name])
	}
	cfg, startErr := te.Start()
	// Hand the new processes to the watchdog even if the start failed half-way.
	for _, name := range []string{"kube-apiserver", "etcd"} {
		after, _ := childrenWithExe(bins[name])
		for pid := range after {
			if !before[name][pid] {
				e.groups = append(e.groups, pid) // envtest starts them with Setpgid: pgid == pid
				_ = e.watchdog.watchGroup(pid)
			}
		}
	}
	envtestStartMu.Unlock()
	e.envtest = te
	e.Webhooks = &te.WebhookInstallOptions
	if startErr != nil {
		return fmt.Errorf("starting kube-apiserver and etcd: %w", startErr)
	}
	e.Config = cfg

	e.KubeconfigPath = filepath.Join(e.Dir, "kubeconfig")
	if err := os.WriteFile(e.KubeconfigPath, te.KubeConfig, 0o600); err != nil {
		return err
	}
	e.Client, err = client.New(cfg, client.Options{Scheme: e.Scheme})
	return err
}

func (e *Env) startChild(name, bin string, args, env []string) (*child, error) {
	logPath, f, err := e.logFile(name)
	if err != nil {
		return nil, err
	}
	_ = f.Close()
	c, err := startChild(name, bin, args, env, logPath)
	if err != nil {
		return nil, err
	}
	e.children = append(e.children, c)
	e.groups = append(e.groups, c.pid())
	if err := e.watchdog.watchGroup(c.pid()); err != nil {
		return c, err
	}
	return c, nil
}

// reducedControllers is what Options.ControllerManager runs: only what envtest lacks and a real
// cluster relies on; without a kubelet (and KWOK) the workload controllers would have nothing
// to do but create Pods that never run.
const reducedControllers = "garbage-collector-controller,namespace-controller,clusterrole-aggregation-controller"

func (e *Env) startControllerManager(opts Options, bin string) error {
	c, url, err := e.startControllerManagerChild(bin, reducedControllers, nil)
	if err != nil {
		return err
	}
	return waitHTTPOK(c, url, opts.StartTimeout)
}

// startControllerManagerChild starts kube-controller-manager with the given --controllers (and
// extra flags) and returns it with its /healthz URL.
func (e *Env) startControllerManagerChild(bin, controllers string, extra []string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	args := []string{
		"--kubeconfig=" + e.KubeconfigPath,
		"--authentication-kubeconfig=" + e.KubeconfigPath,
		"--authorization-kubeconfig=" + e.KubeconfigPath,
		"--controllers=" + controllers,
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(e.Dir, "kube-controller-manager"),
		// Pick up new CRDs (e.g. chartkind's generated ones) quickly for garbage collection.
		"--concurrent-gc-syncs=5",
	}
	args = append(args, extra...)
	c, err := e.startChild("kube-controller-manager", bin, args, nil)
	if err != nil {
		return nil, "", err
	}
	return c, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), nil
}

func (e *Env) startFlux(opts Options, sourceBin, helmBin string) error {
	ports := make([]int, 5)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	storage, srcMetrics, srcHealth, helmMetrics, helmHealth := ports[0], ports[1], ports[2], ports[3], ports[4]
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	env := []string{"KUBECONFIG=" + e.KubeconfigPath}
	storagePath := filepath.Join(e.Dir, "source-controller-storage")
	if err := os.MkdirAll(storagePath, 0o755); err != nil {
		return err
	}
	common := []string{
		"--enable-leader-election=false",
		"--watch-all-namespaces=true",
		"--events-addr=",
		"--log-encoding=console",
	}
	srcArgs := append(append([]string{
		"--storage-path=" + storagePath,
		"--storage-addr=" + addr(storage),
		"--storage-adv-addr=" + addr(storage),
		"--metrics-addr=" + addr(srcMetrics),
		"--health-addr=" + addr(srcHealth),
	}, common...), opts.SourceControllerArgs...)
	src, err := e.startChild("source-controller", sourceBin, srcArgs, env)
	if err != nil {
		return err
	}
	e.SourceControllerStorageURL = "http://" + addr(storage)

	helmArgs := append(append([]string{
		"--metrics-addr=" + addr(helmMetrics),
		"--health-addr=" + addr(helmHealth),
		// A HelmRelease whose chart is not fetched yet is retried after this; the default 30s
		// would dominate every test's run time.
		"--requeue-dependency=2s",
		// SIGTERM should not wait 10 minutes for an in-flight Helm action.
		"--graceful-shutdown-timeout=" + stopGracePeriod.String(),
	}, common...), opts.HelmControllerArgs...)
	helm, err := e.startChild("helm-controller", helmBin, helmArgs, env)
	if err != nil {
		return err
	}
	// /readyz answers once the manager runs, not when its caches are synced: tests must still
	// wait on object conditions (see WaitForReady).
	if err := waitHTTPOK(src, "http://"+addr(srcHealth)+"/readyz", opts.StartTimeout); err != nil {
		return err
	}
	return waitHTTPOK(helm, "http://"+addr(helmHealth)+"/readyz", opts.StartTimeout)
}

// waitHTTPOK polls url until it answers 200, failing early if c exits.
func waitHTTPOK(c *child, url string, timeout time.Duration) error {
	hc := &http.Client{
		Timeout: 2 * time.Second,
		// kube-controller-manager serves /healthz with a self-signed certificate.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback health check
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := poll(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		if c.exited() {
			return false, fmt.Errorf("%s exited during start-up: %v", c.name, c.waitErr)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s (%s): %w", c.name, url, err)
	}
	return nil
}

// Stop stops every component (children by process group: SIGTERM, then SIGKILL after a grace
// period), verifies that none of their processes is left, and removes Dir. It is idempotent
// and safe to call on a partially started Env.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() { e.stopErr = e.stop() })
	return e.stopErr
}

func (e *Env) stop() error {
	var errs []error
	// The watchdog must not fire because of this orderly shutdown.
	if e.watchdog != nil {
		if err := e.watchdog.disarm(); err != nil {
			errs = append(errs, err)
		}
	}
	// Clients of the API server first, in reverse start order.
	for i := len(e.children) - 1; i >= 0; i-- {
		if err := e.children[i].stop(stopGracePeriod); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.children[i].name, err))
		}
	}
	if e.envtest != nil {
		if err := e.envtest.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("kube-apiserver/etcd: %w", err))
		}
	}
	for _, f := range e.openFiles {
		_ = f.Close()
	}
	// Whatever envtest did, no process of any of our groups may survive.
	for _, pgid := range e.groups {
		if err := killGroup(pgid, stopGracePeriod); err != nil {
			errs = append(errs, err)
		}
	}
	if e.Dir != "" && os.Getenv("TESTENV_KEEP") != "1" {
		if err := os.RemoveAll(e.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ProcessGroups returns the process group IDs of every process this Env started (kube-apiserver
// and etcd included); each group's leader PID equals its group ID. After Stop none exists.
func (e *Env) ProcessGroups() []int { return append([]int(nil), e.groups...) }

// NewScheme returns a scheme with client-go's built-in types, apiextensions/v1, Flux helmv2
// and sourcev1, plus whatever extra registers.
func NewScheme(extra ...func(*runtime.Scheme) error) (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range append([]func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		apiextensionsv1.AddToScheme,
		helmv2.AddToScheme,
		sourcev1.AddToScheme,
	}, extra...) {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ModuleRoot returns the chartkind module root: the nearest directory above the working
// directory (a test's package directory) that holds a go.mod declaring the chartkind module.
// Tools modules under hack/tools have their own go.mod, hence the module-path check.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && moduleLine(string(b)) == "github.com/chartkind/chartkind" {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the github.com/chartkind/chartkind go.mod above the working directory")
		}
		dir = parent
	}
}

func moduleLine(gomod string) string {
	for _, line := range strings.Split(gomod, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}
