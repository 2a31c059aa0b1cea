package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/operator"
)

const operatorUsage = `Usage: chartkind operator [flags]

Runs the chartkind operator: serves a kind for every ApplicationDefinition and
keeps each application object in step with its Flux HelmRelease.

Flags:
`

func runOperator(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("operator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, operatorUsage); fs.PrintDefaults() }
	kubeconfig := fs.String("kubeconfig", "", "`PATH` of a kubeconfig file; default: $KUBECONFIG, then the in-cluster configuration")
	var opts operator.Options
	fs.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", ":8080", "`ADDRESS` serving Prometheus metrics; 0 turns them off")
	fs.BoolVar(&opts.Pprof, "pprof", false, "serve Go's runtime profiles (net/http/pprof: /debug/pprof/heap, /debug/pprof/profile, ...) on --metrics-bind-address; they expose what the operator holds in memory, so enable this only where the metrics address is private")
	fs.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "`ADDRESS` serving /healthz and /readyz; 0 turns them off")
	fs.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect a leader, so only one replica is active")
	fs.StringVar(&opts.LeaderElectionID, "leader-election-id", "chartkind-operator", "`NAME` of the leader election Lease: each shard needs its own")
	fs.StringVar(&opts.WatchLabelSelector, "watch-label-selector", "", "`SELECTOR`: mirror only the application objects whose labels match it, and their HelmReleases, e.g. sharding.chartkind.io/key=shard1 (docs/sharding.md)")
	manageDefs := fs.Bool("manage-definitions", true, "manage ApplicationDefinitions: CRDs, per-kind roles, definition status and the webhook; false for every shard but one (docs/sharding.md)")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "`NAMESPACE` of the leader election Lease (default: the pod's namespace)")
	fs.BoolVar(&opts.RequireServiceAccount, "require-service-account", false, "refuse ApplicationDefinitions without spec.release.serviceAccountName (Ready=False, reason ServiceAccountRequired): every release then runs as a service account of the object's namespace, not as helm-controller (docs/security.md)")
	fs.StringVar(&opts.Policy.DefaultServiceAccount, "default-service-account", "", "`NAME` of the service account, in each object's namespace, that releases of definitions without spec.release.serviceAccountName run as (helm-controller impersonates it; ReleasesIsolated=True, reason DefaultServiceAccount; docs/security.md)")
	fs.BoolVar(&opts.Policy.NoCrossNamespaceRefs, "no-cross-namespace-refs", false, "write every HelmRelease's chart source reference without a namespace, so helm-controller reads the source of that name in the release's own namespace, as it requires with its own --no-cross-namespace-refs=true (docs/security.md)")
	fs.DurationVar(&opts.NamespaceRolesInterval, "namespace-roles-interval", time.Minute, "how often the built-in admin and edit ClusterRoles are read to tell whether tenants may write HelmReleases directly (ReleasesIsolated=False, reason HelmReleasesWritable); negative turns the check off")
	fs.StringVar(&opts.ChartsDir, "charts-dir", "", "`DIR` holding the charts definitions name, as <name>/ or <name>-<version>.tgz")
	fs.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "application objects reconciled at once")
	// client-go's own default (5 requests/s, bursts of 10) makes a bulk import of
	// thousands of objects take hours; these match what the API server's
	// priority and fairness easily absorbs for one controller.
	qps := fs.Float64("kube-api-qps", 50, "sustained requests per second to the API server")
	burst := fs.Int("kube-api-burst", 100, "requests allowed in a burst above --kube-api-qps")
	insight := fs.Bool("release-insight", true, "read what each release installed, on demand: a Healthy condition from its objects' health (kstatus) and status.access with its Services, Ingresses and Secret key names")
	notes := fs.Bool("release-notes", true, "show the release notes (NOTES.txt) in status.access.notes; needs read access to Helm's release Secrets")
	fs.DurationVar(&opts.HealthInterval, "health-interval", 5*time.Minute, "how often the objects of a healthy release are read again, to notice workloads that degrade after install")
	memoryLimit := fs.String("memory-limit", "", "`QUANTITY`, the container's memory limit (e.g. 512Mi; the Helm chart passes limits.memory): the Go runtime gets a soft memory limit of 90% of it, so its GC works harder before the process is killed for exceeding the limit; a GOMEMLIMIT environment variable wins; empty: no soft limit")
	gcPercent := fs.Int("gc-percent", operator.DefaultGCPercent, "the Go GC's target heap growth in percent (GOGC): at 50 the heap stays within 1.5× what is live, Go's default 100 lets it grow to 2×; 0 keeps the runtime's; a GOGC environment variable wins")
	logLevel := fs.String("log-level", "info", "`LEVEL`: debug, info or error (or a number: 2 is more verbose than debug)")
	logFormat := fs.String("log-format", "json", "`FORMAT`: json (structured) or console (for development)")
	webhookFlags := addWebhookFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chartkind operator: unexpected arguments %v\n", fs.Args())
		return 2
	}
	sel, err := labels.Parse(opts.WatchLabelSelector)
	if err != nil {
		fmt.Fprintf(stderr, "chartkind operator: --watch-label-selector %q: %v\n", opts.WatchLabelSelector, err)
		return 2
	}
	if reqs, _ := sel.Requirements(); len(reqs) > 0 {
		// Only the shard key is copied onto HelmReleases, and the HelmRelease
		// cache is filtered with the same selector: a selector on another
		// label would leave this operator's own HelmReleases out of it.
		for _, r := range reqs {
			if r.Key() != mirror.ShardLabel {
				fmt.Fprintf(stderr, "chartkind operator: --watch-label-selector %q: only the shard key %s may be selected on, not %s (docs/sharding.md)\n", opts.WatchLabelSelector, mirror.ShardLabel, r.Key())
				return 2
			}
		}
	}
	opts.ShardOnly = !*manageDefs
	if opts.ShardOnly {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || (f.Name == "webhook" && f.Value.String() == "true") })
		if explicit {
			fmt.Fprintln(stderr, "chartkind operator: --webhook needs --manage-definitions: the operator that manages definitions serves the webhook for every shard")
			return 2
		}
	}
	wh, err := webhookFlags.options(fs, *kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "chartkind operator: %v\n", err)
		return 2
	}
	opts.Webhook = wh
	if sa := opts.Policy.DefaultServiceAccount; sa != "" {
		if errs := validation.IsDNS1123Subdomain(sa); len(errs) > 0 {
			fmt.Fprintf(stderr, "chartkind operator: --default-service-account=%q: %s\n", sa, strings.Join(errs, "; "))
			return 2
		}
	}
	if opts.ShardOnly {
		// The webhook goes with definitions: one operator serves it for all shards.
		opts.Webhook = nil
	}
	opts.DisableInsight, opts.DisableReleaseNotes = !*insight, !*notes
	log, err := newLogger(*logLevel, *logFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "chartkind operator: %v\n", err)
		return 2
	}
	ctrl.SetLogger(log)
	klog.SetLogger(log)
	opts.Logger = log
	if *gcPercent < 0 {
		fmt.Fprintf(stderr, "chartkind operator: --gc-percent %d: must be 0 or more\n", *gcPercent)
		return 2
	}
	log.V(1).Info("GC target set", "percent", operator.SetGCPercent(*gcPercent))
	if limit, err := operator.SetMemoryLimit(*memoryLimit); err != nil {
		fmt.Fprintf(stderr, "chartkind operator: %v\n", err)
		return 2
	} else if limit > 0 {
		log.Info("soft memory limit set", "bytes", limit, "containerLimit", *memoryLimit)
	}

	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "chartkind operator: %v\n", err)
		return 1
	}
	cfg.QPS, cfg.Burst = float32(*qps), *burst
	cfg.UserAgent = "chartkind/" + Version
	op, err := operator.New(cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "chartkind operator: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("starting chartkind operator", "version", Version)
	if err := op.Start(ctx); err != nil {
		log.Error(err, "operator stopped")
		return 1
	}
	return 0
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("reading kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no --kubeconfig or $KUBECONFIG given and not running in a cluster: %w", err)
	}
	return cfg, nil
}

// newLogger builds a zap logger: JSON for machines by default, console for people.
func newLogger(level, format string, w io.Writer) (logr.Logger, error) {
	var lvl zapcore.Level
	switch level {
	case "debug":
		lvl = zapcore.DebugLevel
	case "info":
		lvl = zapcore.InfoLevel
	case "error":
		lvl = zapcore.ErrorLevel
	default:
		var n int
		if _, err := fmt.Sscanf(level, "%d", &n); err != nil || n < 0 {
			return logr.Logger{}, fmt.Errorf("--log-level %q: want debug, info, error or a verbosity number", level)
		}
		lvl = zapcore.Level(-n)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return logr.Logger{}, fmt.Errorf("--log-format %q: want json or console", format)
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(w), zap.NewAtomicLevelAt(lvl))
	return zapr.NewLogger(zap.New(core)), nil
}
