// Command bench measures the chartkind operator at scale against a real
// kube-apiserver and etcd and prints a table.
//
// It starts the control plane, runs `chartkind operator` as a separate process
// (so its RSS and its API requests are its own), registers K kinds and creates N
// objects of each, then measures every step of the mirror with watches:
//
//   - baseline: the API server's own create → watch-event latency, measured on
//     ConfigMaps in the same run; every latency is also given as a ratio to it;
//   - create → HelmRelease exists;
//   - HelmRelease Ready → object Ready (the bench writes HelmRelease status as
//     helm-controller would: there is no kubelet and a real Helm install per
//     object would measure Helm, not chartkind). Before this phase the bench
//     creates, untimed, what each release "installed" (releaseObjects): a
//     Service and a ConfigMap, which the HelmRelease's status.inventory lists,
//     and Helm's release record Secrets of revisions 1 and 2, which hold the
//     notes; so release insight has real objects to read;
//   - spec update → HelmRelease values updated;
//   - upgrade done (HelmRelease Ready for the new generation, revision 2 in
//     status.history) → object Ready for generation 2;
//   - definition created → kind served, and → first object's HelmRelease;
//   - operator RSS, API writes and reads per object (from the operator's own
//     client metrics), and API writes during an idle period, which must be 0;
//   - a restart check: the operator is restarted with a short
//     --health-interval (-recheck-interval), so that it reads every release
//     again and again; it must still write nothing.
//
// Before the operator starts, the ideal mirror (ideal.go) goes through the
// create, Ready and update phases on its own kinds, so that chartkind's
// throughput and single-change latency are reported against the least work
// any mirror of this design must do, measured in the same run (-ideal,
// -single). -json prints the figures as one JSON object (json.go). -shards N
// runs N operator processes, each one shard key (docs/sharding.md).
//
// -insight=false runs the operator with --release-insight=false. -compare runs
// everything twice, insight off and then on, each on a fresh control plane and
// operator process, and ends with a table of what release insight costs.
//
// Run it with `make bench-operator` (K=10, N=1000 by default).
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/testenv"
)

type config struct {
	operatorBin              string // built once, so that every run measures the same operator
	kinds, objects, workers  int
	idle, timeout            time.Duration
	operatorQPS              float64
	insight, compare         bool
	healthInterval           time.Duration
	recheck, recheckInterval time.Duration
	reconcilers              int    // the operator's --max-concurrent-reconciles, and the ideal mirror's workers
	ideal                    bool   // measure the ideal mirror first (ideal.go)
	idealSchema              string // schemaFree, schemaChartkind, schemaChartkindStatus, "both" or "all"
	idealInstalled           bool   // create for the ideal's releases what they installed, as for chartkind's
	single                   int    // changes of each phase made one at a time, after the bulk phases
	json                     bool   // print one JSON object on stdout (the tables go to stderr)
	shards                   int    // operator processes, each one shard (docs/sharding.md)
	prebuilt                 string
	heapProfile              string // where to save the operator's heap profile, taken with its RSS
	createOnly               bool   // only the create phase: for sizes the other phases would take hours at
	operatorEnv              string // KEY=VALUE,... added to the operator's environment (e.g. GOGC=50)
	statusCost               int    // -status-cost: objects per status-write form; 0 runs the bench
}

// idealSchemas are the ideal's measurements -ideal-schema asks for, in
// order: a comma-separated list of schemas, the first measured with single
// changes and the one chartkind's goals are reported against, or "both"
// (free, chartkind) or "all" (free, chartkind, chartkind-status).
func idealSchemas(flag string) ([]string, error) {
	switch flag {
	case "both":
		return []string{schemaFree, schemaChartkind}, nil
	case "all":
		return []string{schemaFree, schemaChartkind, schemaChartkindStatus}, nil
	}
	list := strings.Split(flag, ",")
	for i, s := range list {
		if s != schemaFree && s != schemaChartkind && s != schemaChartkindStatus || slices.Contains(list[:i], s) || (s == schemaFree && i > 0) {
			return nil, fmt.Errorf("-ideal-schema %q: want a list of free, chartkind and chartkind-status, each once and free first, or both or all", flag)
		}
	}
	return list, nil
}

func main() {
	var c config
	flag.IntVar(&c.kinds, "kinds", 10, "number of kinds (ApplicationDefinitions)")
	flag.IntVar(&c.objects, "objects", 1000, "objects created per kind")
	flag.IntVar(&c.workers, "workers", 16, "concurrent writers in the bench client")
	flag.DurationVar(&c.idle, "idle", 60*time.Second, "idle period in which the operator must make no write")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "time limit of a run (-compare makes two)")
	flag.Float64Var(&c.operatorQPS, "operator-qps", 200, "the operator's --kube-api-qps")
	flag.BoolVar(&c.insight, "insight", true, "the operator's --release-insight (Healthy condition and status.access, read live from what each release installed)")
	flag.BoolVar(&c.compare, "compare", false, "run the bench with -insight=false, then with -insight=true, each on a fresh control plane and operator, and print what release insight costs")
	flag.DurationVar(&c.healthInterval, "health-interval", 0, "the operator's --health-interval during the measured phases (0: the operator's default, 5m)")
	flag.DurationVar(&c.recheck, "recheck", 60*time.Second, "after the idle period, restart the operator with --health-interval=<recheck-interval>; once it synced every object, check for at least this long (with insight on, also until it re-read about every release once) that it writes nothing; 0 skips the check")
	flag.DurationVar(&c.recheckInterval, "recheck-interval", 10*time.Second, "the --health-interval of the restarted operator")
	flag.IntVar(&c.reconcilers, "reconcilers", 8, "the operator's --max-concurrent-reconciles, and the ideal mirror's workers")
	flag.BoolVar(&c.ideal, "ideal", true, "measure the ideal mirror (the least work per object of any mirror of this design, plain client-go) in the same run, first")
	flag.StringVar(&c.idealSchema, "ideal-schema", schemaFree, "the schema of the ideal mirror's kinds: \"free\" (spec and status accept anything: no validation), \"chartkind\" (the CRD chartkind generates for the bench's definition, which the API server checks on every write), \"chartkind-status\" (chartkind's CRD, and the ideal writes the status chartkind writes, conditions, access and all), \"both\" (the ideal measured twice, free then chartkind's; single changes with the free one), \"all\" (three times: free, chartkind, chartkind-status), or a comma-separated list of those three (the first one with single changes)")
	flag.BoolVar(&c.idealInstalled, "ideal-installed", true, "before the ideal's Ready phase, create for its releases what they installed (a Service, a ConfigMap and 2 release records each), untimed, as for chartkind's: the API server then holds as much in both runs; false: the ideal runs on an API server with 4 objects fewer per object (the bench before session 11)")
	flag.IntVar(&c.single, "single", 20, "after the bulk phases, changes of each phase made one at a time (each once the last is mirrored), for the ideal mirror and chartkind; 0 skips them")
	flag.BoolVar(&c.json, "json", false, "print one JSON object with the figures on stdout; the tables go to stderr")
	flag.StringVar(&c.prebuilt, "operator-bin", "", "a chartkind binary built elsewhere (e.g. from an older commit) to measure instead of building this module's")
	flag.IntVar(&c.shards, "shards", 1, "operator processes, each one shard of the objects: objects are spread over the shard keys in turn (docs/sharding.md)")
	flag.StringVar(&c.heapProfile, "heap-profile", "", "run the operator with --pprof and, when its RSS is read at the end of the idle period, save its heap profile (/debug/pprof/heap after a GC; read it with go tool pprof -top -sample_index=inuse_space) in `FILE`, and the same as text ending in runtime.MemStats in FILE.txt; with -shards, shard i's in FILE-s<i>")
	flag.BoolVar(&c.createOnly, "create-only", false, "measure only the create phase (then the idle period and -recheck): no releases installed, Ready, update or upgrade phase; implies -ideal=false and -single 0. For sizes the other phases would take hours at")
	flag.IntVar(&c.statusCost, "status-cost", 0, "measure only what one status write costs the control plane, in several forms (verb, schema, CEL rules, size of the status), each on `N` fresh objects, then exit")
	flag.StringVar(&c.operatorEnv, "operator-env", "", "`KEY=VALUE,...` added to the operator processes' environment only, e.g. GOGC=50 or GOMEMLIMIT=100MiB to measure the Go GC's settings (the control plane and the bench keep theirs)")
	idealMirror := flag.Bool("ideal-mirror", false, "internal: run as the ideal mirror process")
	kubeconfig := flag.String("ideal-kubeconfig", "", "internal: the ideal mirror's kubeconfig")
	shown := flag.Bool("ideal-shown-status", false, "internal: the ideal mirror writes chartkind's status")
	flag.Parse()
	if *idealMirror {
		if err := runIdealMirror(*kubeconfig, c.kinds, c.operatorQPS, c.reconcilers, *shown); err != nil {
			fmt.Fprintf(os.Stderr, "ideal mirror: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if c.createOnly {
		c.ideal, c.single = false, 0
	}
	if _, err := idealSchemas(c.idealSchema); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(2)
	}
	// The bench's clients log nothing worth reading; errors are returned.
	crlog.SetLogger(logr.Discard())
	if err := bench(c); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// bench runs the bench once, or twice with -compare, and prints the reports.
func bench(c config) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	bin, cleanup := c.prebuilt, func() {}
	if bin == "" {
		var err error
		if bin, cleanup, err = buildOperator(ctx); err != nil {
			return err
		}
	}
	defer cleanup()
	c.operatorBin = bin
	runs := []config{c}
	if c.compare {
		off, on := c, c
		off.insight, on.insight = false, true
		runs = []config{off, on}
	}
	var results []*result
	var failed []error
	for _, rc := range runs {
		rctx, rcancel := context.WithTimeout(context.Background(), c.timeout)
		r, err := run(rctx, rc)
		rcancel()
		if err != nil {
			return err
		}
		if r == nil { // -status-cost: its table is printed
			return nil
		}
		out := io.Writer(os.Stdout)
		if c.json {
			out = os.Stderr
		}
		report(out, rc, r)
		if c.json {
			if err := writeJSON(os.Stdout, rc, r); err != nil {
				return err
			}
		}
		if err := r.check(); err != nil {
			failed = append(failed, err)
		}
		results = append(results, r)
	}
	if c.compare {
		compareReport(os.Stdout, c, results[0], results[1])
	}
	return errors.Join(failed...)
}

// buildOperator builds `chartkind` from the module once, before any run.
func buildOperator(ctx context.Context) (string, func(), error) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "chartkind-bench-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	bin := filepath.Join(dir, "chartkind")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/chartkind")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("building chartkind: %w", err)
	}
	return bin, cleanup, nil
}

var (
	hrGVR  = helmv2.GroupVersion.WithResource("helmreleases")
	cmGVR  = corev1.SchemeGroupVersion.WithResource("configmaps")
	defGVR = v1alpha1.GroupVersion.WithResource("applicationdefinitions")
	crdGVR = apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")
	evGVR  = schema.GroupVersionResource{Group: "events.k8s.io", Version: "v1", Resource: "events"}
)

const ns = "bench"

// counters are the operator's own metrics the bench reads.
type counters struct {
	writes     int64   // client-go requests POST, PUT, PATCH, DELETE
	reads      int64   // client-go requests GET: gets, lists and watches
	observes   int64   // releases read by release insight (chartkind_release_observe_seconds_count)
	observeErr int64   // of which failed (result="error")
	observeSec float64 // seconds spent in them (chartkind_release_observe_seconds_sum)
	reconciles int64   // application object reconciles (chartkind_reconciles_total)
	// CPU time (user + system) of the operator, and of kube-apiserver and
	// etcd together: much less sensitive than wall time to whatever else
	// runs on the machine.
	opCPU, cpCPU time.Duration
}

func (a counters) sub(b counters) counters {
	return counters{writes: a.writes - b.writes, reads: a.reads - b.reads, observes: a.observes - b.observes,
		observeErr: a.observeErr - b.observeErr, observeSec: a.observeSec - b.observeSec, reconciles: a.reconciles - b.reconciles,
		opCPU: a.opCPU - b.opCPU, cpCPU: a.cpCPU - b.cpCPU}
}

// meanObserve is the mean time of one release observation.
func (a counters) meanObserve() time.Duration {
	if a.observes == 0 {
		return 0
	}
	return time.Duration(a.observeSec / float64(a.observes) * float64(time.Second))
}

// phaseResult is one bulk phase: every object changed at once.
type phaseResult struct {
	name  string // in the latency table
	short string // in the phase table
	lat   []time.Duration
	wall  time.Duration
	// ops are the operator's requests from the end of the previous phase
	// (once its writes stopped) to the end of this one, over perObject objects.
	ops       counters
	perObject int
}

func (p phaseResult) per(n int64) float64 { return float64(n) / float64(p.perObject) }

// perCPU is CPU time per object, in milliseconds.
func (p phaseResult) perCPU(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond) / float64(p.perObject)
}

// result is everything one run measured.
type result struct {
	insight                       bool
	total                         int
	baseline, served, firstObject []time.Duration
	phases                        []phaseResult // create, ready, update, upgrade
	idleOps                       counters
	idleWritten                   []string
	rss, hwm                      int64
	rssAnon                       int64 // of rss, anonymous memory (the heap, stacks), not the binary's pages
	recheck                       *recheckResult
	ideal                         *idealResult
	idealSchema                   *idealResult       // -ideal-schema both or all: the ideal on chartkind's CRD
	idealStatus                   *idealResult       // -ideal-schema all: the ideal on chartkind's CRD, writing chartkind's status
	single                        [3][]time.Duration // create, Ready, update, one at a time
}

// recheckResult is the restart check: a fresh operator process with a short
// --health-interval, on the same objects. Its start (until it reconciled as
// many times as there are objects) and the re-reads that follow are counted
// apart: on start the operator applies each kind's CRD again, which changes
// nothing but is a request.
type recheckResult struct {
	interval        time.Duration
	startTook, took time.Duration
	startOps, ops   counters
	complete        bool // the window saw as many reconciles as wanted before the time limit
	rss             int64
	written         []string // objects changed from the restart to the end of the check
}

func (r *result) check() error {
	var errs []string
	if r.idleOps.writes != 0 {
		errs = append(errs, fmt.Sprintf("the operator wrote %d times while idle; it must write nothing%s", r.idleOps.writes, listWritten(r.idleWritten)))
	}
	if rc := r.recheck; rc != nil && (rc.ops.writes != 0 || len(rc.written) != 0) {
		errs = append(errs, fmt.Sprintf("the restarted operator (--health-interval %s) wrote %d times on start and %d times re-reading unchanged releases; it must change nothing%s",
			rc.interval, rc.startOps.writes, rc.ops.writes, listWritten(rc.written)))
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "\n"))
}

func listWritten(w []string) string {
	if len(w) == 0 {
		return " (no application object, HelmRelease, definition, CRD or Event changed)"
	}
	return "; changed:\n  " + strings.Join(w, "\n  ")
}

func run(ctx context.Context, c config) (*result, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "[bench] "+format+"\n", args...) }

	logf("starting kube-apiserver and etcd (operator --release-insight=%v)", c.insight)
	env, stopEnv, err := testenv.StartMain(testenv.Options{AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme}})
	if err != nil {
		return nil, err
	}
	defer stopEnv()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	cl, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, err
	}
	if c.statusCost > 0 {
		return nil, statusCost(ctx, env, cl, dyn, c.statusCost, c.reconcilers)
	}
	r := &result{insight: c.insight, total: c.kinds * c.objects}
	total := r.total

	// Baseline: the API server's own create → watch event latency.
	logf("baseline: %d ConfigMaps, create → watch event", c.objects)
	if r.baseline, err = measureBaseline(ctx, cl, dyn, c); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}

	if c.ideal {
		schemas, _ := idealSchemas(c.idealSchema)
		for i, s := range schemas {
			again := c
			if i > 0 { // single changes with the first only
				again.single = 0
			}
			res, err := measureIdeal(ctx, env, cl, dyn, again, s)
			if err != nil {
				return nil, fmt.Errorf("ideal mirror on the %s schema: %w", s, err)
			}
			switch {
			case i == 0:
				r.ideal = res
			case s == schemaChartkind:
				r.idealSchema = res
			case s == schemaChartkindStatus:
				r.idealStatus = res
			}
		}
	}

	op, err := startOperator(ctx, env, c, c.healthInterval, "chartkind-operator.log")
	if err != nil {
		return nil, err
	}
	defer func() { op.stop() }() // op is replaced by the restart check

	hrs := newTracker()
	stopHRWatch, err := watchAll(ctx, dyn, hrGVR, ns, hrs)
	if err != nil {
		return nil, err
	}
	defer stopHRWatch()
	// Everything the operator may write, to say what changed if it writes
	// while it should not.
	audited := map[string]*tracker{"HelmRelease": hrs}
	for kind, gvr := range map[string]schema.GroupVersionResource{"ApplicationDefinition": defGVR, "CustomResourceDefinition": crdGVR, "Event": evGVR} {
		audited[kind] = newTracker()
		stop, err := watchAll(ctx, dyn, gvr, "", audited[kind])
		if err != nil {
			return nil, err
		}
		defer stop()
	}

	// Register K kinds, measuring definition → served → first object.
	logf("registering %d kinds", c.kinds)
	kinds := make([]schema.GroupVersionResource, c.kinds)
	objTrackers := make([]*tracker, c.kinds)
	for k := 0; k < c.kinds; k++ {
		kind := kindName(k)
		kinds[k] = schema.GroupVersionResource{Group: v1alpha1.DefaultGroup, Version: "v1alpha1", Resource: strings.ToLower(kind) + "s"}
		def := benchDefinition(kind)
		start := time.Now()
		if err := cl.Create(ctx, def); err != nil {
			return nil, err
		}
		if err := pollUntil(ctx, 2*time.Minute, func() (bool, error) {
			if err := cl.Get(ctx, client.ObjectKeyFromObject(def), def); err != nil {
				return false, err
			}
			return apimeta.IsStatusConditionTrue(def.Status.Conditions, "Ready"), nil
		}); err != nil {
			return nil, fmt.Errorf("definition %s never Ready: %w", def.Name, err)
		}
		r.served = append(r.served, time.Since(start))
		objTrackers[k] = newTracker()
		audited[kind] = objTrackers[k]
		stop, err := watchAll(ctx, dyn, kinds[k], ns, objTrackers[k])
		if err != nil {
			return nil, err
		}
		defer stop()
		// First object of the kind: created as soon as the kind is served.
		name := "o0"
		if err := createObject(ctx, dyn, kinds[k], kind, name, 1); err != nil {
			return nil, fmt.Errorf("first object of %s: %w", kind, err)
		}
		if err := hrs.waitSeen(ctx, releaseName(k, name), time.Minute); err != nil {
			return nil, fmt.Errorf("first object of %s: %w", kind, err)
		}
		r.firstObject = append(r.firstObject, time.Since(start))
	}

	if rss, _, err := op.rss(); err == nil {
		logf("%d kinds served: definition → kind served p50 %s, p99 %s; operator RSS %.0f MiB", c.kinds, round(pct(r.served, 50)), round(pct(r.served, 99)), mib(rss))
	}
	last, err := op.counters()
	if err != nil {
		return nil, err
	}
	// endPhase waits until the operator's writes stop, so each phase's
	// requests are counted in that phase, and records the phase.
	endPhase := func(p phaseResult) error {
		if err := waitQuiet(ctx, op, 3*time.Second); err != nil {
			return err
		}
		now, err := op.counters()
		if err != nil {
			return err
		}
		p.ops, last = now.sub(last), now
		r.phases = append(r.phases, p)
		if rss, _, err := op.rss(); err == nil {
			logf("%s: %.0f objects/s, operator RSS now %.0f MiB", p.short, float64(total)/p.wall.Seconds(), mib(rss))
		}
		return nil
	}

	// Create N objects per kind (the first already exists).
	logf("creating %d objects (%d kinds × %d)", total, c.kinds, c.objects)
	createdAt := newTimes()
	phase := time.Now()
	err = parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
		if i == 0 {
			return nil
		}
		name := fmt.Sprintf("o%d", i)
		createdAt.set(releaseName(k, name), time.Now())
		return createObjectIn(ctx, dyn, kinds[k], kindName(k), ns, name, 1, shardKey(i%max(c.shards, 1)))
	})
	if err != nil {
		return nil, err
	}
	createToHR, err := collect(ctx, createdAt, phaseTimeout(total), hrs.seenAt)
	if err != nil {
		return nil, fmt.Errorf("create → HelmRelease: %w", err)
	}
	// The first object of each kind was created before the counters were read.
	if err := endPhase(phaseResult{name: "object create → HelmRelease exists", short: "create → HelmRelease exists",
		lat: createToHR, wall: time.Since(phase), perObject: total - c.kinds}); err != nil {
		return nil, err
	}

	if c.createOnly {
		return idleEnd(ctx, c, r, env, &op, audited, last)
	}

	// What each release installed, created untimed (as Helm would, before
	// helm-controller writes Ready); the operator reads none of it yet.
	logf("creating what the %d releases installed: a Service, a ConfigMap and 2 release records each", total)
	if err := installReleases(ctx, cl, c, ns, func(k int, name string) string { return releaseName(k, name) }); err != nil {
		return nil, err
	}
	// The Ready phase's counters start here: creating what the releases
	// installed is the bench's work, not the mirror's (the operator reads
	// none of it until a HelmRelease is Ready), and costs the control plane
	// 4 creates per object.
	if last, err = op.counters(); err != nil {
		return nil, err
	}

	// released writes Ready on every HelmRelease, as helm-controller does once
	// it installed (revision 1) or upgraded (revision 2), and measures until
	// every object shows Ready for generation.
	released := func(revision int, generation int64, name, short string) error {
		for _, t := range objTrackers {
			t.expect(isReadyAt(generation))
		}
		at := newTimes()
		phase := time.Now()
		err := parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
			name := fmt.Sprintf("o%d", i)
			hr := &helmv2.HelmRelease{}
			if err := cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: releaseName(k, name)}, hr); err != nil {
				return err
			}
			markReleased(hr, revision)
			at.set(objectKey(k, name), time.Now())
			return cl.Status().Update(ctx, hr)
		})
		if err != nil {
			return err
		}
		lat, err := collect(ctx, at, phaseTimeout(total), matchedInKind(objTrackers))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return endPhase(phaseResult{name: name, short: short, lat: lat, wall: time.Since(phase), perObject: total})
	}

	// HelmRelease Ready → object Ready.
	logf("writing Ready status (revision 1, with an inventory) on %d HelmReleases", total)
	if err := released(1, 1, "HelmRelease Ready → object Ready", "HelmRelease Ready → object Ready"); err != nil {
		return nil, err
	}

	// spec update → HelmRelease values updated.
	logf("updating the spec of %d objects", total)
	updatedAt := newTimes()
	phase = time.Now()
	hrs.expect(func(u *unstructured.Unstructured) bool {
		v, _, _ := unstructured.NestedInt64(u.Object, "spec", "values", "replicas")
		return v == 2
	})
	err = parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
		name := fmt.Sprintf("o%d", i)
		updatedAt.set(releaseName(k, name), time.Now())
		_, err := dyn.Resource(kinds[k]).Namespace(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return nil, err
	}
	updateLat, err := collect(ctx, updatedAt, phaseTimeout(total), hrs.matchedAt)
	if err != nil {
		return nil, fmt.Errorf("spec update → values: %w%s", err, liveState(ctx, dyn, err, hrs))
	}
	if err := endPhase(phaseResult{name: "spec update → HelmRelease values updated", short: "spec update → values updated",
		lat: updateLat, wall: time.Since(phase), perObject: total}); err != nil {
		return nil, err
	}

	// Upgrade done → object Ready for the new generation: afterwards every
	// release is healthy and settled, as in a cluster at rest.
	logf("writing Ready status for the new generation (revision 2) on %d HelmReleases", total)
	if err := released(2, 2, "upgrade done → object Ready (generation 2)", "upgrade done → object Ready"); err != nil {
		return nil, err
	}

	if c.single > 0 {
		logf("%d single changes of each phase", c.single)
		time.Sleep(2 * time.Second)
		r.single, err = singleChanges(ctx, cl, dyn, side{ns: ns, gvr: kinds[0], kind: kindName(0),
			release: func(n string) string { return releaseName(0, n) }, hrs: hrs, objs: objTrackers[0],
			beforeReady: func(ctx context.Context, hr *helmv2.HelmRelease) error {
				objs, err := releaseObjects(hr)
				if err != nil {
					return err
				}
				for _, o := range objs {
					if err := cl.Create(ctx, o); err != nil {
						return err
					}
				}
				return nil
			}}, c.single)
		if err != nil {
			return nil, err
		}
		if err := waitQuiet(ctx, op, 3*time.Second); err != nil {
			return nil, err
		}
		if last, err = op.counters(); err != nil {
			return nil, err
		}
	}

	logf("status of %s o1 now: %s", kindName(0), describeStatus(objTrackers[0], "o1"))
	return idleEnd(ctx, c, r, env, &op, audited, last)
}

// idleEnd runs the end of a run, after its last measured phase: the idle
// period, the RSS (and heap profile) at its end, and the restart check.
func idleEnd(ctx context.Context, c config, r *result, env *testenv.Env, opp **operatorProcess, audited map[string]*tracker, last counters) (*result, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "[bench] "+format+"\n", args...) }
	op := *opp
	total := r.total
	var err error
	if last.observeErr > 0 {
		logf("release insight failed %d times (chartkind_release_observe_seconds_count{result=\"error\"})", last.observeErr)
	}
	logf("idle for %s", c.idle)
	before := takeSnapshot(audited)
	time.Sleep(c.idle)
	now, err := op.counters()
	if err != nil {
		return nil, err
	}
	r.idleOps = now.sub(last)
	r.idleWritten = before.changed(audited)
	if r.rss, r.hwm, err = op.rss(); err != nil {
		return nil, err
	}
	if r.rssAnon, err = op.rssAnon(); err != nil {
		return nil, err
	}
	if c.heapProfile != "" {
		// After the RSS: the profile's GC must not change the figure.
		if err := op.saveHeapProfiles(ctx, c.heapProfile); err != nil {
			return nil, fmt.Errorf("heap profile: %w", err)
		}
		logf("heap profile saved in %s (and %s.txt)", c.heapProfile, c.heapProfile)
	}

	if c.recheck > 0 {
		rc, err := recheck(ctx, c, env, opp, audited, total)
		if err != nil {
			return nil, fmt.Errorf("restart check: %w", err)
		}
		r.recheck = rc
	}
	return r, nil
}

// recheck restarts the operator with --health-interval=c.recheckInterval.
// Once it has reconciled as many times as there are objects (its start
// sync), it counts what the operator does for at least c.recheck and, with
// insight on, until it reconciled every object about once more: re-reads of
// healthy, unchanged releases, which must write nothing.
func recheck(ctx context.Context, c config, env *testenv.Env, op **operatorProcess, audited map[string]*tracker, total int) (*recheckResult, error) {
	fmt.Fprintf(os.Stderr, "[bench] restarting the operator with --health-interval %s; it must write nothing for %s or more\n", c.recheckInterval, c.recheck)
	(*op).stop()
	before := takeSnapshot(audited)
	next, err := startOperator(ctx, env, c, c.recheckInterval, "chartkind-operator-restarted.log")
	if err != nil {
		return nil, err
	}
	*op = next
	rc := &recheckResult{interval: c.recheckInterval}
	start := time.Now()
	limit := start.Add(c.recheck + 10*time.Minute)
	var synced time.Time
	for {
		n, err := next.counters()
		if err != nil {
			return nil, err
		}
		if synced.IsZero() {
			rc.startOps, rc.startTook = n, time.Since(start)
			if n.reconciles >= int64(total) {
				synced = time.Now()
			}
		} else {
			rc.ops, rc.took = n.sub(rc.startOps), time.Since(synced)
			rc.complete = !c.insight || rc.ops.reconciles >= int64(total)
			if rc.complete && rc.took >= c.recheck {
				break
			}
		}
		if time.Now().After(limit) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	rc.written = before.changed(audited)
	if rc.rss, _, err = next.rss(); err != nil {
		return nil, err
	}
	return rc, nil
}

// liveState says, for a few HelmReleases a collect never saw change, what
// the API server holds and what the bench's watch last saw: it tells a bench
// that missed events from an operator that missed them.
func liveState(ctx context.Context, dyn dynamic.Interface, err error, hrs *tracker) string {
	var me *missingError
	if !errors.As(err, &me) {
		return ""
	}
	var b strings.Builder
	for i, name := range me.missing {
		if i == 3 {
			break
		}
		u, err := dyn.Resource(hrGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			fmt.Fprintf(&b, "\n  HelmRelease %s: %v", name, err)
			continue
		}
		values, _, _ := unstructured.NestedMap(u.Object, "spec", "values")
		hrs.mu.Lock()
		seen := hrs.objs[name]
		hrs.mu.Unlock()
		seenRV := ""
		if seen != nil {
			seenRV = seen.GetResourceVersion()
		}
		fmt.Fprintf(&b, "\n  HelmRelease %s in the API server: resourceVersion %s, generation %d, values %v, annotations %v; last seen by the bench's watch: resourceVersion %s",
			name, u.GetResourceVersion(), u.GetGeneration(), values, u.GetAnnotations(), seenRV)
	}
	return b.String()
}

// --- the report -------------------------------------------------------------

func report(out io.Writer, c config, r *result) {
	total := r.total
	b50, b99 := pct(r.baseline, 50), pct(r.baseline, 99)
	fmt.Fprintf(out, "\nchartkind operator benchmark: %d kinds × %d objects = %d objects (real kube-apiserver + etcd, %d cores), --release-insight=%v\n\n",
		c.kinds, c.objects, total, numCPU(), r.insight)
	fmt.Fprintf(out, "| measure | p50 | p99 | p50 / baseline p50 | p99 / baseline p99 |\n|---|---|---|---|---|\n")
	row := func(name string, d []time.Duration) {
		p50, p99 := pct(d, 50), pct(d, 99)
		fmt.Fprintf(out, "| %s | %s | %s | %.1f× | %.1f× |\n", name, round(p50), round(p99), ratio(p50, b50), ratio(p99, b99))
	}
	row("baseline: API server create → watch event (ConfigMap)", r.baseline)
	for _, p := range r.phases {
		row(p.name, p.lat)
	}
	row("definition created → kind served", r.served)
	row("definition created → first object's HelmRelease", r.firstObject)
	fmt.Fprintf(out, "\nEach bulk phase submits all %d changes at once, so its latencies are mostly time spent queued;\nthe whole phase, from the first change to the last one mirrored:\n\n| phase | wall time | objects/s |\n|---|---|---|\n", total)
	for _, p := range r.phases {
		fmt.Fprintf(out, "| %s | %s | %.0f |\n", p.short, round(p.wall), float64(total)/p.wall.Seconds())
	}
	for _, id := range []*idealResult{r.ideal, r.idealSchema, r.idealStatus} {
		if id == nil || len(id.phases) != 3 || len(r.phases) < 3 {
			continue
		}
		fmt.Fprintf(out, "\nAgainst the ideal mirror on the %s schema (-ideal-schema), measured first in the same run:\n\n| phase | ideal objects/s | chartkind objects/s | chartkind / ideal |\n|---|---|---|---|\n", id.schema)
		for i := range 3 {
			a, b := float64(total)/id.phases[i].wall.Seconds(), float64(total)/r.phases[i].wall.Seconds()
			fmt.Fprintf(out, "| %s | %.1f | %.1f | %.1f %% |\n", r.phases[i].short, a, b, 100*b/a)
		}
		fmt.Fprintf(out, "\nCPU per object in the same phases, from the first change to the last one mirrored (chartkind's: to the end of its writes):\n\n| phase | ideal mirror | chartkind operator | kube-apiserver + etcd, ideal | kube-apiserver + etcd, chartkind |\n|---|---|---|---|---|\n")
		for i := range 3 {
			a, b := id.phases[i], r.phases[i]
			fmt.Fprintf(out, "| %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms |\n", b.short, a.perCPU(a.ops.opCPU), b.perCPU(b.ops.opCPU), a.perCPU(a.ops.cpCPU), b.perCPU(b.ops.cpCPU))
		}
	}
	fmt.Fprintf(out, "\n| measure | value |\n|---|---|\n")
	fmt.Fprintf(out, "| operator RSS at the end (peak) | %.0f MiB (%.0f MiB) |\n", mib(r.rss), mib(r.hwm))
	fmt.Fprintf(out, "| of which anonymous (heap, stacks; the rest is the binary's pages) | %.0f MiB |\n", mib(r.rssAnon))
	labels := []string{"create", "Ready reflected", "spec update", "upgrade reflected"}
	for i, p := range r.phases {
		fmt.Fprintf(out, "| operator API writes per object: %s | %.2f |\n", labels[i], p.per(p.ops.writes))
	}
	for i, p := range r.phases {
		fmt.Fprintf(out, "| operator API reads (GET) per object: %s | %.2f |\n", labels[i], p.per(p.ops.reads))
	}
	if r.insight {
		var failed int64
		for i, p := range r.phases {
			fmt.Fprintf(out, "| releases observed (insight) per object: %s | %.2f |\n", labels[i], p.per(p.ops.observes))
			failed += p.ops.observeErr
		}
		for i, p := range r.phases[1:] {
			fmt.Fprintf(out, "| releases observed (insight): mean time of one, %s | %s |\n", labels[i+1], round(p.ops.meanObserve()))
		}
		fmt.Fprintf(out, "| releases observed (insight): reads that failed, all phases | %d |\n", failed)
	}
	for i, p := range r.phases {
		fmt.Fprintf(out, "| CPU per object, operator / kube-apiserver + etcd: %s | %.2f ms / %.2f ms |\n", labels[i], p.perCPU(p.ops.opCPU), p.perCPU(p.ops.cpCPU))
	}
	fmt.Fprintf(out, "| operator API writes during %s idle | %d |\n", c.idle, r.idleOps.writes)
	fmt.Fprintf(out, "| operator API reads (GET) during %s idle | %d |\n", c.idle, r.idleOps.reads)
	fmt.Fprintf(out, "| CPU during %s idle, operator / kube-apiserver + etcd | %s / %s |\n", c.idle, round(r.idleOps.opCPU), round(r.idleOps.cpCPU))
	if rc := r.recheck; rc != nil {
		perObj := func(n int64) float64 { return float64(n) / float64(total) }
		what := fmt.Sprintf("restarted operator: start sync (%s)", round(rc.startTook))
		fmt.Fprintf(out, "| %s: API writes | %d%s |\n", what, rc.startOps.writes, unchanged(rc))
		fmt.Fprintf(out, "| %s: API reads (GET) per object | %.2f |\n", what, perObj(rc.startOps.reads))
		if r.insight {
			fmt.Fprintf(out, "| %s: releases observed per object | %.2f |\n", what, perObj(rc.startOps.observes))
		}
		what = fmt.Sprintf("then %s with --health-interval %s", round(rc.took), rc.interval)
		if !rc.complete {
			what += " (time limit: fewer re-reads than objects)"
		}
		fmt.Fprintf(out, "| %s: reconciles per object | %.2f |\n", what, perObj(rc.ops.reconciles))
		if r.insight {
			fmt.Fprintf(out, "| %s: releases observed per object | %.2f |\n", what, perObj(rc.ops.observes))
		}
		fmt.Fprintf(out, "| %s: API reads (GET) per object | %.2f |\n", what, perObj(rc.ops.reads))
		fmt.Fprintf(out, "| %s: API writes | %d |\n", what, rc.ops.writes)
		fmt.Fprintf(out, "| %s: CPU, operator / kube-apiserver + etcd | %s / %s |\n", what, round(rc.ops.opCPU), round(rc.ops.cpCPU))
		fmt.Fprintf(out, "| restarted operator: RSS at the end | %.0f MiB |\n", mib(rc.rss))
	}
}

// unchanged notes, after a count of writes, that they changed no object.
func unchanged(rc *recheckResult) string {
	if rc.startOps.writes > 0 && len(rc.written) == 0 {
		return " (no object changed)"
	}
	return ""
}

// compareReport prints the cost of release insight: the run with it on
// against the run with it off.
func compareReport(out io.Writer, c config, off, on *result) {
	fmt.Fprintf(out, "\nRelease insight: cost. The same bench with --release-insight=false, then =true, each on a fresh control plane and operator (%d kinds × %d objects, %d cores):\n\n", c.kinds, c.objects, numCPU())
	fmt.Fprintf(out, "| measure | insight off | insight on | on vs off |\n|---|---|---|---|\n")
	pctChange := func(a, b float64) string {
		if a == 0 {
			return "–"
		}
		return fmt.Sprintf("%+.0f %%", 100*(b-a)/a)
	}
	for i := range on.phases {
		a, b := off.phases[i], on.phases[i]
		ta, tb := float64(off.total)/a.wall.Seconds(), float64(on.total)/b.wall.Seconds()
		fmt.Fprintf(out, "| %s: objects/s | %.0f | %.0f | %s |\n", b.short, ta, tb, pctChange(ta, tb))
	}
	for i := range on.phases {
		a, b := pct(off.phases[i].lat, 50), pct(on.phases[i].lat, 50)
		fmt.Fprintf(out, "| %s: p50 latency | %s | %s | %s |\n", on.phases[i].short, round(a), round(b), pctChange(float64(a), float64(b)))
	}
	fmt.Fprintf(out, "| operator RSS at the end (peak) | %.0f MiB (%.0f MiB) | %.0f MiB (%.0f MiB) | %+.0f MiB (%+.0f MiB) |\n",
		mib(off.rss), mib(off.hwm), mib(on.rss), mib(on.hwm), mib(on.rss-off.rss), mib(on.hwm-off.hwm))
	labels := []string{"create", "Ready reflected", "spec update", "upgrade reflected"}
	perRow := func(what string, f func(p phaseResult) int64) {
		for i := range on.phases {
			a, b := off.phases[i].per(f(off.phases[i])), on.phases[i].per(f(on.phases[i]))
			fmt.Fprintf(out, "| %s per object: %s | %.2f | %.2f | %+.2f |\n", what, labels[i], a, b, b-a)
		}
	}
	cpuRow := func(what string, f func(p phaseResult) time.Duration) {
		for i := range on.phases {
			a, b := off.phases[i].perCPU(f(off.phases[i])), on.phases[i].perCPU(f(on.phases[i]))
			fmt.Fprintf(out, "| %s CPU per object: %s | %.2f ms | %.2f ms | %s |\n", what, labels[i], a, b, pctChange(a, b))
		}
	}
	cpuRow("operator", func(p phaseResult) time.Duration { return p.ops.opCPU })
	cpuRow("kube-apiserver + etcd", func(p phaseResult) time.Duration { return p.ops.cpCPU })
	perRow("API writes", func(p phaseResult) int64 { return p.ops.writes })
	perRow("API reads (GET)", func(p phaseResult) int64 { return p.ops.reads })
	perRow("releases observed", func(p phaseResult) int64 { return p.ops.observes })
	for i := range on.phases[1:] {
		fmt.Fprintf(out, "| release observation, mean time of one: %s | | %s | |\n", labels[i+1], round(on.phases[i+1].ops.meanObserve()))
	}
	fmt.Fprintf(out, "| API writes during %s idle | %d | %d | |\n", c.idle, off.idleOps.writes, on.idleOps.writes)
	fmt.Fprintf(out, "| API reads (GET) during %s idle | %d | %d | |\n", c.idle, off.idleOps.reads, on.idleOps.reads)
	fmt.Fprintf(out, "| operator CPU during %s idle | %s | %s | |\n", c.idle, round(off.idleOps.opCPU), round(on.idleOps.opCPU))
	if off.recheck != nil && on.recheck != nil {
		a, b := off.recheck, on.recheck
		perA := func(n int64) float64 { return float64(n) / float64(off.total) }
		perB := func(n int64) float64 { return float64(n) / float64(on.total) }
		fmt.Fprintf(out, "| restarted operator: start sync | %s | %s | |\n", round(a.startTook), round(b.startTook))
		fmt.Fprintf(out, "| restarted operator: start sync API writes | %d%s | %d%s | |\n", a.startOps.writes, unchanged(a), b.startOps.writes, unchanged(b))
		fmt.Fprintf(out, "| restarted operator: start sync API reads (GET) per object | %.2f | %.2f | %+.2f |\n", perA(a.startOps.reads), perB(b.startOps.reads), perB(b.startOps.reads)-perA(a.startOps.reads))
		what := fmt.Sprintf("then --health-interval %s", b.interval)
		fmt.Fprintf(out, "| %s: checked for | %s | %s | |\n", what, round(a.took), round(b.took))
		fmt.Fprintf(out, "| %s: releases observed per object | %.2f | %.2f | |\n", what, perA(a.ops.observes), perB(b.ops.observes))
		fmt.Fprintf(out, "| %s: API reads (GET) per object | %.2f | %.2f | %+.2f |\n", what, perA(a.ops.reads), perB(b.ops.reads), perB(b.ops.reads)-perA(a.ops.reads))
		fmt.Fprintf(out, "| %s: API writes | %d | %d | |\n", what, a.ops.writes, b.ops.writes)
		fmt.Fprintf(out, "| %s: operator CPU | %s | %s | |\n", what, round(a.ops.opCPU), round(b.ops.opCPU))
		fmt.Fprintf(out, "| %s: kube-apiserver + etcd CPU | %s | %s | |\n", what, round(a.ops.cpCPU), round(b.ops.cpCPU))
		fmt.Fprintf(out, "| restarted operator: RSS at the end | %.0f MiB | %.0f MiB | %+.0f MiB |\n", mib(a.rss), mib(b.rss), mib(b.rss-a.rss))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// --- the application objects and their releases ------------------------------

func kindName(k int) string                 { return fmt.Sprintf("Bench%d", k) }
func releaseName(k int, name string) string { return fmt.Sprintf("bench%d-%s", k, name) }
func objectKey(k int, name string) string   { return fmt.Sprintf("%d/%s", k, name) }

func benchDefinition(kind string) *v1alpha1.ApplicationDefinition {
	lower := strings.ToLower(kind)
	return &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: lower},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: kind, Plural: lower + "s"},
			Release: v1alpha1.ReleaseSpec{
				Prefix: lower + "-",
				Chart:  &v1alpha1.ChartTemplate{Name: lower, Version: "*", SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "bench", Namespace: ns}},
			},
			Schema: &apiextensionsv1.JSON{Raw: []byte(`{"type":"object","properties":{"replicas":{"type":"integer","minimum":1},"size":{"type":["integer","string"]},"mode":{"type":"string","enum":["a","b"]}}}`)},
		},
	}
}

func createObject(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, kind, name string, replicas int64) error {
	return createObjectIn(ctx, dyn, gvr, kind, ns, name, replicas, "")
}

// createObjectIn creates an object in namespace ns, with the shard key
// label when key is not "".
func createObjectIn(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, kind, ns, name string, replicas int64, key string) error {
	meta := map[string]any{"name": name, "namespace": ns}
	if key != "" {
		meta["labels"] = map[string]any{shardLabel: key}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gvr.GroupVersion().String(),
		"kind":       kind,
		"metadata":   meta,
		"spec":       map[string]any{"replicas": replicas, "size": "1Gi", "mode": "a"},
	}}
	_, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, u, metav1.CreateOptions{})
	return err
}

// installReleases creates, for each of the bench's HelmReleases in
// namespace, what its release installed (releaseObjects), as Helm would
// before helm-controller writes Ready. release names the HelmRelease of
// object name of kind k.
func installReleases(ctx context.Context, cl client.Client, c config, namespace string, release func(k int, name string) string) error {
	return parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
		hr := &helmv2.HelmRelease{}
		if err := cl.Get(ctx, types.NamespacedName{Namespace: namespace, Name: release(k, fmt.Sprintf("o%d", i))}, hr); err != nil {
			return err
		}
		objs, err := releaseObjects(hr)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if err := cl.Create(ctx, o); err != nil {
				return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
			}
		}
		return nil
	})
}

// releaseObjects is what the bench pretends hr's release installed, for
// release insight to read: a Service (read for its health and status.access)
// and a ConfigMap (listed in the inventory, which insight skips: a ConfigMap
// has no health), and Helm's release records of revisions 1 and 2 (read once
// per revision for the notes). The Service is headless: the bench's API
// server allocates cluster IPs from a /24 (envtest's default), too few for
// thousands of Services, and reading a headless Service costs the same GET.
func releaseObjects(hr *helmv2.HelmRelease) ([]client.Object, error) {
	rel, relNS := hr.GetReleaseName(), hr.GetReleaseNamespace()
	labels := map[string]string{"app.kubernetes.io/instance": rel, "app.kubernetes.io/managed-by": "Helm"}
	objs := []client.Object{
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: rel, Namespace: relNS, Labels: labels},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone, Selector: labels,
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}}},
		},
		&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: rel + "-config", Namespace: relNS, Labels: labels},
			Data:       map[string]string{"config.yaml": "replicas: 1\nsize: 1Gi\nmode: a\n"},
		},
	}
	for revision := 1; revision <= 2; revision++ {
		rec, err := releaseRecord(hr, revision)
		if err != nil {
			return nil, err
		}
		objs = append(objs, rec)
	}
	return objs, nil
}

// releaseRecord is the Secret in which Helm's storage driver keeps one
// revision of the release: a gzip'ed JSON release, base64-encoded, with the
// rendered notes and manifest (no chart files: real records are larger).
func releaseRecord(hr *helmv2.HelmRelease, revision int) (*corev1.Secret, error) {
	rel, relNS := hr.GetReleaseName(), hr.GetReleaseNamespace()
	status := "superseded"
	if revision == 2 {
		status = "deployed"
	}
	type info struct {
		Status      string `json:"status"`
		Description string `json:"description"`
		Notes       string `json:"notes"`
	}
	record := struct { // Helm's field order: name, info, chart, config, manifest, version, namespace
		Name      string         `json:"name"`
		Info      info           `json:"info"`
		Chart     map[string]any `json:"chart"`
		Config    map[string]any `json:"config"`
		Manifest  string         `json:"manifest"`
		Version   int            `json:"version"`
		Namespace string         `json:"namespace"`
	}{
		Name: rel,
		Info: info{Status: status, Description: "Install complete",
			Notes: fmt.Sprintf("1. Reach the application from inside the cluster:\n  http://%s.%s.svc:80\n2. Or from your machine:\n  kubectl -n %s port-forward svc/%s 8080:80\n\nRevision %d of chart bench-1.0.0.\n", rel, relNS, relNS, rel, revision)},
		Chart:  map[string]any{"metadata": map[string]any{"name": "bench", "version": "1.0.0", "apiVersion": "v2"}},
		Config: map[string]any{"replicas": revision, "size": "1Gi", "mode": "a"},
		Manifest: fmt.Sprintf("---\n# Source: bench/templates/service.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  clusterIP: None\n  ports:\n  - name: http\n    port: 80\n    targetPort: http\n"+
			"---\n# Source: bench/templates/configmap.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-config\n  namespace: %s\ndata:\n  config.yaml: |\n    replicas: %d\n", rel, relNS, rel, relNS, revision),
		Version:   revision,
		Namespace: relNS,
	}
	raw, err := json.Marshal(record)
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	if _, err := w.Write(raw); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("sh.helm.release.v1.%s.v%d", rel, revision), Namespace: hr.GetStorageNamespace(),
			Labels: map[string]string{"name": rel, "owner": "helm", "status": status, "version": strconv.Itoa(revision)},
		},
		Type: "helm.sh/release.v1",
		Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(gz.Bytes()))},
	}, nil
}

// markReleased writes what helm-controller writes after a successful install
// (revision 1) or upgrade: Ready for the current generation, the inventory of
// what the release installed (releaseObjects) and the history, newest first.
func markReleased(hr *helmv2.HelmRelease, revision int) {
	now := metav1.Now()
	reason, msg := "InstallSucceeded", "Helm install succeeded"
	if revision > 1 {
		reason, msg = "UpgradeSucceeded", "Helm upgrade succeeded"
	}
	rel, relNS := hr.GetReleaseName(), hr.GetReleaseNamespace()
	msg += fmt.Sprintf(" for release %s/%s.v%d with chart bench@1.0.0", relNS, rel, revision)
	hr.Status.ObservedGeneration = hr.Generation
	hr.Status.Conditions = []metav1.Condition{
		{Type: meta.ReadyCondition, Status: metav1.ConditionTrue, Reason: reason, Message: msg, LastTransitionTime: now, ObservedGeneration: hr.Generation},
		{Type: "Released", Status: metav1.ConditionTrue, Reason: reason, Message: msg, LastTransitionTime: now, ObservedGeneration: hr.Generation},
	}
	hr.Status.StorageNamespace = hr.GetStorageNamespace()
	hr.Status.Inventory = &helmv2.ResourceInventory{Entries: []helmv2.ResourceRef{
		{ID: relNS + "_" + rel + "-config__ConfigMap", Version: "v1"},
		{ID: relNS + "_" + rel + "__Service", Version: "v1"},
	}}
	hr.Status.History = nil
	for v := revision; v >= 1; v-- {
		status := "superseded"
		if v == revision {
			status = "deployed"
		}
		hr.Status.History = append(hr.Status.History, &helmv2.Snapshot{Name: rel, Namespace: relNS, Version: v, Status: status,
			ChartName: "bench", ChartVersion: "1.0.0", ConfigDigest: "sha256:" + strconv.Itoa(v), Digest: "sha256:" + strconv.Itoa(v), FirstDeployed: now, LastDeployed: now})
	}
}

// describeStatus is one line on what the operator wrote in an object's
// status: its conditions, endpoint and access information.
func describeStatus(t *tracker, name string) string {
	t.mu.Lock()
	u := t.objs[name]
	t.mu.Unlock()
	if u == nil {
		return "not seen"
	}
	var parts []string
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		parts = append(parts, fmt.Sprintf("%v=%v (%v: %v)", m["type"], m["status"], m["reason"], m["message"]))
	}
	if e, ok, _ := unstructured.NestedString(u.Object, "status", "endpoint"); ok {
		parts = append(parts, "endpoint "+e)
	}
	if a, ok, _ := unstructured.NestedMap(u.Object, "status", "access"); ok {
		j, _ := json.Marshal(a)
		parts = append(parts, "access "+cut(string(j)))
	}
	return strings.Join(parts, "; ")
}

func isReady(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// isReadyAt says whether an object is Ready for the given generation.
func isReadyAt(generation int64) func(*unstructured.Unstructured) bool {
	return func(u *unstructured.Unstructured) bool {
		g, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
		return g == generation && isReady(u)
	}
}

// --- watching ---------------------------------------------------------------

// tracker records when each object was first seen, and when it first matched
// the current expectation.
type tracker struct {
	mu      sync.Mutex
	seen    map[string]time.Time
	matched map[string]time.Time
	match   func(*unstructured.Unstructured) bool
	objs    map[string]*unstructured.Unstructured
}

func newTracker() *tracker {
	return &tracker{seen: map[string]time.Time{}, matched: map[string]time.Time{}, objs: map[string]*unstructured.Unstructured{}}
}

func (t *tracker) observe(u *unstructured.Unstructured, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	name := u.GetName()
	if _, ok := t.seen[name]; !ok {
		t.seen[name] = at
	}
	t.objs[name] = u
	if t.match != nil {
		if _, ok := t.matched[name]; !ok && t.match(u) {
			t.matched[name] = at
		}
	}
}

func (t *tracker) expect(match func(*unstructured.Unstructured) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.match, t.matched = match, map[string]time.Time{}
	for name, u := range t.objs {
		if match(u) {
			t.matched[name] = time.Time{} // already true: not measurable
		}
	}
}

func (t *tracker) waitSeen(ctx context.Context, name string, timeout time.Duration) error {
	return pollUntil(ctx, timeout, func() (bool, error) {
		_, ok := t.seenAt(name)
		return ok, nil
	})
}

// watchAll feeds t with every object of gvr in namespace ("" for all
// namespaces, or a cluster-scoped resource). The watch is started again
// (from the last resourceVersion seen, or after a new list when that is too
// old) whenever the API server ends it, so a long run misses no event.
func watchAll(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, namespace string, t *tracker) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	res := dyn.Resource(gvr).Namespace(namespace)
	relist := func() (string, error) {
		list, err := res.List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", err
		}
		for i := range list.Items {
			t.observe(&list.Items[i], time.Now())
		}
		return list.GetResourceVersion(), nil
	}
	rv, err := relist()
	if err != nil {
		cancel()
		return nil, err
	}
	w, err := res.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		for {
			for ev := range w.ResultChan() {
				u, _ := ev.Object.(*unstructured.Unstructured)
				switch {
				case (ev.Type == watch.Added || ev.Type == watch.Modified) && u != nil:
					t.observe(u, time.Now())
					rv = u.GetResourceVersion()
				case ev.Type == watch.Bookmark && u != nil:
					rv = u.GetResourceVersion()
				case ev.Type == watch.Error:
					rv = "" // most likely 410 Gone: list again
					w.Stop()
				}
			}
			for ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "[bench] the watch of %s ended; watching again from resourceVersion %q\n", gvr.Resource, rv)
				if rv == "" {
					if rv, err = relist(); err != nil {
						time.Sleep(time.Second)
						continue
					}
				}
				if w, err = res.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}); err == nil {
					break
				}
				rv = ""
				time.Sleep(time.Second)
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	return cancel, nil
}

type times struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func newTimes() *times { return &times{m: map[string]time.Time{}} }
func (t *times) set(k string, v time.Time) {
	t.mu.Lock()
	t.m[k] = v
	t.mu.Unlock()
}

// collect waits until lookup knows a time for every key of start and returns
// each time minus its start. A zero time means "already true before start":
// it counts as done but is not a measurement.
func collect(ctx context.Context, start *times, timeout time.Duration, lookup func(key string) (time.Time, bool)) ([]time.Duration, error) {
	var out []time.Duration
	err := pollUntil(ctx, timeout, func() (bool, error) {
		start.mu.Lock()
		defer start.mu.Unlock()
		out = out[:0]
		for k, s := range start.m {
			at, ok := lookup(k)
			if !ok {
				return false, nil
			}
			if !at.IsZero() {
				out = append(out, at.Sub(s))
			}
		}
		return true, nil
	})
	if err != nil {
		start.mu.Lock()
		defer start.mu.Unlock()
		var missing []string
		for k := range start.m {
			if _, ok := lookup(k); !ok {
				missing = append(missing, k)
			}
		}
		sort.Strings(missing)
		err = &missingError{err: err, total: len(start.m), missing: missing}
	}
	return out, err
}

// missingError says which keys a collect never saw.
type missingError struct {
	err     error
	total   int
	missing []string
}

func (e *missingError) Error() string {
	ex := e.missing
	if len(ex) > 5 {
		ex = ex[:5]
	}
	return fmt.Sprintf("%v: %d of %d never seen, e.g. %s", e.err, len(e.missing), e.total, strings.Join(ex, ", "))
}

// seenAt and matchedAt look a name up in t.
func (t *tracker) seenAt(name string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.seen[name]
	return at, ok
}

func (t *tracker) matchedAt(name string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.matched[name]
	return at, ok
}

// matchedInKind looks "kind/name" up in the tracker of that kind.
func matchedInKind(ts []*tracker) func(string) (time.Time, bool) {
	return func(key string) (time.Time, bool) {
		i := strings.IndexByte(key, '/')
		k, _ := strconv.Atoi(key[:i])
		return ts[k].matchedAt(key[i+1:])
	}
}

// --- what the operator wrote --------------------------------------------------

// snapshot is the last version seen of every tracked object, by "Kind name".
type snapshot map[string]*unstructured.Unstructured

func takeSnapshot(trackers map[string]*tracker) snapshot {
	s := snapshot{}
	for kind, t := range trackers {
		t.mu.Lock()
		for name, u := range t.objs {
			s[kind+" "+name] = u
		}
		t.mu.Unlock()
	}
	return s
}

// changed waits for the watches to catch up, then describes every tracked
// object whose resourceVersion moved since s: what changed in it.
func (s snapshot) changed(trackers map[string]*tracker) []string {
	time.Sleep(2 * time.Second)
	now := takeSnapshot(trackers)
	var out []string
	for key, u := range now {
		old := s[key]
		if old != nil && old.GetResourceVersion() == u.GetResourceVersion() {
			continue
		}
		if old == nil {
			note, _, _ := unstructured.NestedString(u.Object, "note")
			reason, _, _ := unstructured.NestedString(u.Object, "reason")
			out = append(out, cut(strings.TrimSpace(key+": created "+reason+" "+note)))
			continue
		}
		out = append(out, key+": "+strings.Join(diffObjects(old, u), "; "))
	}
	sort.Strings(out)
	return out
}

// diffObjects lists the fields that differ between two versions of an
// object: labels, annotations, owners, spec, and each status field (each
// condition by type), with their old and new values.
func diffObjects(a, b *unstructured.Unstructured) []string {
	var out []string
	field := func(name string, x, y any) {
		jx, _ := json.Marshal(x)
		jy, _ := json.Marshal(y)
		if !bytes.Equal(jx, jy) {
			out = append(out, fmt.Sprintf("%s: %s → %s", name, cut(string(jx)), cut(string(jy))))
		}
	}
	field("metadata.labels", a.GetLabels(), b.GetLabels())
	field("metadata.annotations", a.GetAnnotations(), b.GetAnnotations())
	field("metadata.ownerReferences", a.GetOwnerReferences(), b.GetOwnerReferences())
	field("metadata.finalizers", a.GetFinalizers(), b.GetFinalizers())
	field("spec", a.Object["spec"], b.Object["spec"])
	sa, _ := a.Object["status"].(map[string]any)
	sb, _ := b.Object["status"].(map[string]any)
	keys := map[string]bool{}
	for k := range sa {
		keys[k] = true
	}
	for k := range sb {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if k != "conditions" {
			field("status."+k, sa[k], sb[k])
			continue
		}
		ca, cb := conditionsByType(sa[k]), conditionsByType(sb[k])
		types := map[string]bool{}
		for t := range ca {
			types[t] = true
		}
		for t := range cb {
			types[t] = true
		}
		for t := range types {
			field("status.conditions["+t+"]", ca[t], cb[t])
		}
	}
	if len(out) == 0 {
		out = append(out, "resourceVersion only")
	}
	return out
}

func conditionsByType(v any) map[string]any {
	out := map[string]any{}
	list, _ := v.([]any)
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			t, _ := m["type"].(string)
			out[t] = m
		}
	}
	return out
}

func cut(s string) string {
	if len(s) > 400 {
		return s[:400] + "…"
	}
	return s
}

// --- baseline ---------------------------------------------------------------

func measureBaseline(ctx context.Context, cl client.Client, dyn dynamic.Interface, c config) ([]time.Duration, error) {
	t := newTracker()
	stop, err := watchAll(ctx, dyn, cmGVR, ns, t)
	if err != nil {
		return nil, err
	}
	defer stop()
	start := newTimes()
	err = parallel(ctx, c.workers, 1, c.objects, func(_, i int) error {
		name := fmt.Sprintf("baseline-%d", i)
		start.set(name, time.Now())
		return cl.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{"replicas": "1"}})
	})
	if err != nil {
		return nil, err
	}
	return collect(ctx, start, time.Minute, t.seenAt)
}

// --- the operator process ---------------------------------------------------

// operatorProcess is the operator: one process, or with -shards N, N
// processes (the first manages definitions and the objects of no shard
// key, each other one the objects of its key). Its counters and RSS are the
// sum over the processes.
type operatorProcess struct {
	procs        []*shardProcess
	controlPlane []int // kube-apiserver and etcd, whose CPU time counters reads too
}

type shardProcess struct {
	cmd         *exec.Cmd
	metricsAddr string
}

// shardKey is the sharding.chartkind.io/key of shard i of n: none for the
// first, which manages definitions.
func shardKey(i int) string {
	if i == 0 {
		return ""
	}
	return fmt.Sprintf("s%d", i)
}

// shardArgs are the flags of shard i of n.
func shardArgs(i, n int) []string {
	if n <= 1 {
		return nil
	}
	if i == 0 {
		var others []string
		for j := 1; j < n; j++ {
			others = append(others, shardKey(j))
		}
		return []string{"--watch-label-selector", shardLabel + " notin (" + strings.Join(others, ",") + ")"}
	}
	return []string{"--watch-label-selector", shardLabel + "=" + shardKey(i), "--manage-definitions=false",
		"--leader-election-id", "chartkind-operator-" + shardKey(i)}
}

const shardLabel = "sharding.chartkind.io/key"

// startOperator runs c.operatorBin's `operator` against env (c.shards
// processes), logging to logName in env's log directory; healthInterval 0
// keeps its default.
func startOperator(ctx context.Context, env *testenv.Env, c config, healthInterval time.Duration, logName string) (*operatorProcess, error) {
	cp, err := controlPlanePIDs(env.Dir)
	if err != nil {
		return nil, err
	}
	op := &operatorProcess{controlPlane: cp}
	n := max(c.shards, 1)
	for i := 0; i < n; i++ {
		metrics, err := freeAddr()
		if err != nil {
			op.stop()
			return nil, err
		}
		name := logName
		if i > 0 {
			name = strings.TrimSuffix(logName, ".log") + "-" + shardKey(i) + ".log"
		}
		logFile, err := os.Create(filepath.Join(env.Dir, "logs", name))
		if err != nil {
			op.stop()
			return nil, err
		}
		args := []string{"operator", "--kubeconfig", env.KubeconfigPath,
			"--metrics-bind-address", metrics, "--health-probe-bind-address", "0",
			"--kube-api-qps", fmt.Sprint(c.operatorQPS), "--kube-api-burst", fmt.Sprint(int(2 * c.operatorQPS)),
			"--max-concurrent-reconciles", strconv.Itoa(c.reconcilers), "--log-level", "error",
			"--release-insight=" + strconv.FormatBool(c.insight)}
		if healthInterval > 0 {
			args = append(args, "--health-interval", healthInterval.String())
		}
		if c.heapProfile != "" {
			args = append(args, "--pprof")
		}
		args = append(args, shardArgs(i, n)...)
		cmd := exec.Command(c.operatorBin, args...)
		if c.operatorEnv != "" {
			cmd.Env = append(os.Environ(), strings.Split(c.operatorEnv, ",")...)
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			op.stop()
			return nil, err
		}
		op.procs = append(op.procs, &shardProcess{cmd: cmd, metricsAddr: metrics})
		one := &operatorProcess{procs: []*shardProcess{op.procs[i]}, controlPlane: cp}
		if err := pollUntil(ctx, time.Minute, func() (bool, error) { _, err := one.writes(); return err == nil, nil }); err != nil {
			op.stop()
			return nil, fmt.Errorf("operator metrics never came up (log: %s)", logFile.Name())
		}
	}
	return op, nil
}

func (o *operatorProcess) stop() {
	for _, p := range o.procs {
		p.stop()
	}
}

func (p *shardProcess) stop() { stopGroup(p.cmd) }

// stopGroup ends the process group cmd leads: SIGTERM, then SIGKILL after 10 s.
func stopGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// writes is the operator's count of writing requests.
func (o *operatorProcess) writes() (int64, error) {
	c, err := o.counters()
	return c.writes, err
}

// counters sums the operator's own client-go request counter by method
// (rest_client_requests_total has no verb label: a GET is a get, a list or
// the start of a watch) and its reconcile and release observation counters.
func (o *operatorProcess) counters() (counters, error) {
	var sum counters
	for _, p := range o.procs {
		c, err := p.counters()
		if err != nil {
			return counters{}, err
		}
		sum.writes, sum.reads, sum.observes, sum.observeErr = sum.writes+c.writes, sum.reads+c.reads, sum.observes+c.observes, sum.observeErr+c.observeErr
		sum.observeSec, sum.reconciles, sum.opCPU = sum.observeSec+c.observeSec, sum.reconciles+c.reconciles, sum.opCPU+c.opCPU
	}
	var err error
	if sum.cpCPU, err = cpuTimes(o.controlPlane); err != nil {
		return counters{}, err
	}
	return sum, nil
}

// counters of one process (without the control plane's CPU).
func (o *shardProcess) counters() (counters, error) {
	resp, err := http.Get("http://" + o.metricsAddr + "/metrics")
	if err != nil {
		return counters{}, err
	}
	defer resp.Body.Close()
	var writes, reads, observes, observeErr, observeSec, reconciles float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		open := strings.IndexByte(line, '{')
		if open < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		name, labels := line[:open], line[open:strings.IndexByte(line, '}')]
		var sum *float64
		switch {
		case name == "rest_client_requests_total" && (strings.Contains(labels, `method="POST"`) || strings.Contains(labels, `method="PUT"`) ||
			strings.Contains(labels, `method="PATCH"`) || strings.Contains(labels, `method="DELETE"`)):
			sum = &writes
		case name == "rest_client_requests_total" && strings.Contains(labels, `method="GET"`):
			sum = &reads
		case name == "chartkind_release_observe_seconds_count":
			sum = &observes
			if strings.Contains(labels, `result="error"`) {
				v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
				observeErr += v
			}
		case name == "chartkind_release_observe_seconds_sum":
			sum = &observeSec
		case name == "chartkind_reconciles_total":
			sum = &reconciles
		default:
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return counters{}, err
		}
		*sum += v
	}
	if err := sc.Err(); err != nil {
		return counters{}, err
	}
	c := counters{writes: int64(writes), reads: int64(reads), observes: int64(observes), observeErr: int64(observeErr), observeSec: observeSec, reconciles: int64(reconciles)}
	if c.opCPU, err = cpuTime(o.cmd.Process.Pid); err != nil {
		return counters{}, err
	}
	return c, nil
}

// controlPlanePIDs finds the kube-apiserver and etcd processes started for
// the environment in dir (their flags name files in it).
func controlPlanePIDs(dir string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		if base := filepath.Base(args[0]); (base == "kube-apiserver" || base == "etcd") && strings.Contains(string(raw), dir+string(filepath.Separator)) {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 2 {
		return nil, fmt.Errorf("found %d kube-apiserver and etcd processes for %s, want 2", len(pids), dir)
	}
	return pids, nil
}

// cpuTimes is the CPU time of the processes pids together (cpuTime).
func cpuTimes(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		d, err := cpuTime(pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// cpuTime is the user + system CPU time of a process so far, from
// /proc/<pid>/stat (utime and stime, in USER_HZ ticks: 100 per second).
func cpuTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses: state is the
	// first of them (field 3 of proc(5)), utime and stime fields 14 and 15.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * (time.Second / 100), nil
}

// rss is the sum over the processes.
func (o *operatorProcess) rss() (rss, hwm int64, err error) {
	for _, p := range o.procs {
		r, h, err := p.rss()
		if err != nil {
			return 0, 0, err
		}
		rss, hwm = rss+r, hwm+h
	}
	return rss, hwm, nil
}

// rssAnon is the anonymous part of the processes' RSS (RssAnon: heap,
// stacks), without the pages of the binary itself (RssFile).
func (o *operatorProcess) rssAnon() (int64, error) {
	var sum int64
	for _, p := range o.procs {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssAnon:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				sum += kb << 10
			}
		}
	}
	return sum, nil
}

func (o *shardProcess) rss() (rss, hwm int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", o.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// saveHeapProfiles saves each operator process's heap profile, taken after
// a GC (so in-use figures are the live heap), in file (shard i > 0 in
// file-s<i>), and the same profile as text, which ends with the process's
// runtime.MemStats (heap in use, heap released, next GC target), in file.txt.
func (o *operatorProcess) saveHeapProfiles(ctx context.Context, file string) error {
	for i, p := range o.procs {
		name := file
		if i > 0 {
			name += "-" + shardKey(i)
		}
		for _, f := range []struct{ query, path string }{{"gc=1", name}, {"debug=1", name + ".txt"}} {
			if err := httpSave(ctx, "http://"+p.metricsAddr+"/debug/pprof/heap?"+f.query, f.path); err != nil {
				return err
			}
		}
	}
	return nil
}

func httpSave(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s (an operator without --pprof? see -operator-bin)", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return os.WriteFile(path, b, 0o644)
}

// phaseTimeout bounds how long a bulk phase may take once its changes are
// made: 10 minutes, or more for sizes that need it at 20 objects/s (a
// loaded 2-core machine mirrored 35/s at 40,000 objects).
func phaseTimeout(total int) time.Duration {
	return max(10*time.Minute, time.Duration(total)*50*time.Millisecond)
}

// waitQuiet waits until the operator's write counter stops moving, so each
// phase's writes are counted in that phase.
func waitQuiet(ctx context.Context, op *operatorProcess, quiet time.Duration) error {
	last, err := op.writes()
	if err != nil {
		return err
	}
	since := time.Now()
	return pollUntil(ctx, 5*time.Minute, func() (bool, error) {
		n, err := op.writes()
		if err != nil {
			return false, err
		}
		if n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= quiet, nil
	})
}

// --- helpers ----------------------------------------------------------------

func parallel(ctx context.Context, workers, kinds, objects int, f func(k, i int) error) error {
	type job struct{ k, i int }
	jobs := make(chan job)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := f(j.k, j.i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := 0; i < objects; i++ {
		for k := 0; k < kinds; k++ {
			select {
			case jobs <- job{k, i}:
			case err = <-errs:
				break feed
			case <-ctx.Done():
				err = ctx.Err()
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

func pollUntil(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := (len(s)*p + 99) / 100
	if idx > 0 {
		idx--
	}
	return s[idx]
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func numCPU() int { return goruntime.NumCPU() }
