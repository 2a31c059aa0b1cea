package insight

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// Defaults and bounds of a Report, exported so that callers (and the CRD
// schema of the status they fill) can size their fields from them.
const (
	// DefaultMaxNotes bounds Access.Notes in bytes when Options.MaxNotes is 0:
	// notes are free text rendered by the chart and must not bloat status.
	DefaultMaxNotes = 8 << 10
	// DefaultMaxProblems bounds Health.Problems (and Access.Omitted) when
	// Options.MaxProblems is 0, so a broken release of 200 objects does not
	// produce 200 status lines.
	DefaultMaxProblems = 10
	// MaxMessage bounds Health.Message in bytes, a size that fits a
	// condition message comfortably (the API allows 32 KiB).
	MaxMessage = 4 << 10
)

// Health.Status values: kstatus's words, so that they read like what
// helm-controller and `kubectl` tooling built on kstatus print.
const (
	// StatusCurrent means every object of the release reached its desired state.
	StatusCurrent = string(status.CurrentStatus)
	// StatusInProgress means some object is still converging (rollout, pending
	// pod, terminating object...).
	StatusInProgress = string(status.InProgressStatus)
	// StatusFailed means some object will not converge by itself (deadline
	// exceeded, crash loop, object deleted from the cluster...).
	StatusFailed = string(status.FailedStatus)
	// StatusUnknown means some object could not be assessed (forbidden, kind
	// not served) or the release has no inventory yet.
	StatusUnknown = string(status.UnknownStatus)
)

// maxPodLines caps the pod lines reported per workload: a 100-replica
// Deployment with one scheduling problem needs a few examples, not 100 lines.
const maxPodLines = 3

// maxLine bounds one free-text reason taken from the cluster (scheduler or
// kubelet messages) so one chatty controller cannot fill the problem list.
const maxLine = 300

// Options says what Observe reads and how much of it it keeps.
type Options struct {
	// Rules select the Services, Ingresses and Secrets shown in Access, as
	// the definition's spec.access.objects; empty means all of them.
	Rules []v1alpha1.AccessRule
	// Notes says whether to read the release notes from Helm's storage
	// (definition's spec.access.releaseNotes); false never reads the record.
	Notes bool
	// MaxNotes bounds Access.Notes in bytes, "…" included; 0 means
	// DefaultMaxNotes.
	MaxNotes int
	// MaxProblems bounds Health.Problems and Access.Omitted, after which one
	// "and N more" line follows; 0 means DefaultMaxProblems.
	MaxProblems int
	// FromWatchCache makes every read at resourceVersion "0", served from
	// the API server's watch cache instead of etcd (see watchCacheReader):
	// for rechecks of a release already observed as it is, where an object
	// seen milliseconds old does no harm. The first observation of a new
	// release status reads from etcd: an object the cache still holds as it
	// was before an upgrade may look healthy.
	FromWatchCache bool
}

// Report is what Observe found, ready to be copied into an application's
// status: equal inputs give equal reports (reflect.DeepEqual).
type Report struct {
	// Access says how to connect to the release.
	Access Access
	// Health says whether the release's objects are healthy and why not.
	Health Health
}

// Health summarises the kstatus of every object in the release inventory.
type Health struct {
	// Status is the worst kstatus over the release's objects, ordered
	// Current < Unknown < InProgress < Failed (an object we cannot assess is
	// less alarming than one known to be broken); Terminating counts as
	// InProgress and an object missing from the cluster as Failed.
	Status string
	// Problems has one line per unhealthy object, grouped by inventory
	// object in inventory order, each followed by the lines that explain it
	// (its not-ready pods, their pending claims), e.g.
	// "Deployment shop/nginx-web: 0/2 available" then
	// "Pod shop/nginx-web-7f9c: Unschedulable: 0/1 nodes are available: 1 Insufficient ephemeral-storage.".
	// At most MaxProblems lines, then "and N more".
	Problems []string
	// Checked counts the inventory objects whose status could be computed
	// (read successfully), so readers can tell "all 12 objects are Current"
	// from "nothing could be read".
	Checked int
}

// Message is Health as a condition message: the problems "; "-joined, or a
// one-line summary when there is none, never longer than MaxMessage bytes.
func (h Health) Message() string {
	if len(h.Problems) == 0 {
		if h.Status == StatusCurrent {
			return fmt.Sprintf("all %d objects of the release are %s", h.Checked, StatusCurrent)
		}
		return fmt.Sprintf("%d objects checked, status %s", h.Checked, h.Status)
	}
	return truncate(strings.Join(h.Problems, "; "), MaxMessage)
}

// Observe reads the objects of hr's inventory (and optionally its release
// record) through r and reports access and health. Unreadable objects
// (forbidden, not found, kind not served) become problem or omission lines;
// only failures that say nothing about the release (context canceled,
// connection errors, server overload) are returned as errors, so the caller
// retries instead of publishing a misleading report.
func Observe(ctx context.Context, r client.Reader, hr *helmv2.HelmRelease, opts Options) (*Report, error) {
	if hr == nil {
		return nil, errors.New("observing release: nil HelmRelease")
	}
	// Reads still in flight when Observe returns early are not wanted.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opts.FromWatchCache {
		r = watchCacheReader{r}
	}
	if opts.MaxNotes <= 0 {
		opts.MaxNotes = DefaultMaxNotes
	}
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = DefaultMaxProblems
	}
	rules, err := compileRules(opts.Rules)
	if err != nil {
		return nil, err
	}
	o := &observer{ctx: ctx, r: r, rules: rules, claims: map[types.NamespacedName]string{}}

	worst := status.CurrentStatus
	var lines []string
	refs := Inventory(hr)
	if hr.Status.Inventory == nil {
		// Not installed yet: go by the manifest Helm is installing.
		if refs, err = pendingRefs(ctx, r, hr); err != nil {
			return nil, err
		}
		if refs == nil {
			worst = status.UnknownStatus
			lines = append(lines, fmt.Sprintf("HelmRelease %s/%s: no inventory recorded yet", hr.Namespace, hr.Name))
		}
	}
	var read []Ref
	for _, ref := range refs {
		if !healthKind(ref) && (accessKind(ref) == "" || !rules.mayShow(accessKind(ref))) {
			continue // neither its health nor its access information is read
		}
		read = append(read, ref)
	}
	// The reads are independent: issue them at once, the release record
	// with them, so that observing a release takes about one round trip
	// whatever its size. Their results are then used in inventory order,
	// as if read one by one.
	type notesResult struct {
		notes, omitted string
		err            error
	}
	var notesDone chan notesResult
	if opts.Notes {
		notesDone = make(chan notesResult, 1)
		go func() {
			n, om, err := readNotes(ctx, r, hr, opts.MaxNotes)
			notesDone <- notesResult{n, om, err}
		}()
	}
	o.prefetched = prefetch(ctx, r, read)
	for _, ref := range read {
		st, more, err := o.object(ref)
		if err != nil {
			return nil, err
		}
		worst = worse(worst, st)
		lines = append(lines, more...)
	}

	rep := &Report{}
	rep.Health = Health{
		Status:   string(worst),
		Problems: capLines(dedup(lines), opts.MaxProblems),
		Checked:  o.checked,
	}
	if notesDone != nil {
		n := <-notesDone
		if n.err != nil {
			return nil, n.err
		}
		o.access.Notes = n.notes
		if n.omitted != "" {
			o.omitted = append(o.omitted, n.omitted)
		}
	}
	o.access.Omitted = o.omitted
	o.access.finish()
	o.access.Omitted = capLines(dedup(o.access.Omitted), opts.MaxProblems)
	rep.Access = o.access
	return rep, nil
}

// observer holds the state of one Observe call.
type observer struct {
	ctx     context.Context
	r       client.Reader
	rules   accessRules
	access  Access
	omitted []string
	checked int
	// claims caches the problem line ("" when fine) of each PVC read.
	claims map[types.NamespacedName]string
	// prefetched are the inventory objects read ahead (prefetch).
	prefetched map[Ref]fetched
}

// fetched is one object read ahead, or why it could not be read.
type fetched struct {
	obj *unstructured.Unstructured
	err error
}

// maxParallelReads bounds the reads one Observe has in flight: the
// client's rate limiter bounds the operator as a whole.
const maxParallelReads = 8

// prefetch reads refs concurrently, at most maxParallelReads at a time.
func prefetch(ctx context.Context, r client.Reader, refs []Ref) map[Ref]fetched {
	out := make(map[Ref]fetched, len(refs))
	if len(refs) == 0 {
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxParallelReads)
	for _, ref := range refs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(ref.GroupVersionKind())
			err := r.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, u)
			if err != nil {
				u = nil
			}
			mu.Lock()
			out[ref] = fetched{obj: u, err: err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// object reads one inventory object and returns its status and problem lines.
func (o *observer) object(ref Ref) (status.Status, []string, error) {
	u, err := o.read(ref)
	if err != nil {
		st, text, ferr := classify(err, ref)
		if ferr != nil {
			return "", nil, ferr
		}
		line := ref.String() + ": " + text
		if kind := accessKind(ref); kind != "" && o.rules.mayMatch(kind, ref.Name) {
			o.omitted = append(o.omitted, line)
		}
		return st, []string{line}, nil
	}
	o.checked++
	if kind := accessKind(ref); kind != "" && o.rules.match(kind, ref.Name, u.GetLabels()) {
		if err := o.access.add(kind, u); err != nil {
			o.omitted = append(o.omitted, ref.String()+": "+err.Error())
		}
	}

	res, err := status.Compute(u)
	if err != nil {
		return status.UnknownStatus, []string{ref.String() + ": status unknown: " + clean(err.Error())}, nil
	}
	st := res.Status
	switch st {
	case status.CurrentStatus:
		return st, nil, nil
	case status.TerminatingStatus:
		st = status.InProgressStatus
	case status.NotFoundStatus:
		st = status.FailedStatus
	case status.InProgressStatus, status.FailedStatus, status.UnknownStatus:
	default:
		st = status.UnknownStatus
	}

	if ref.Group == "" && ref.Kind == "Pod" {
		var pod corev1.Pod
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &pod); err == nil {
			more, err := o.podProblem(&pod)
			return st, more, err
		}
	}
	lines := []string{ref.String() + ": " + summary(ref, u, res)}
	if isWorkload(ref) {
		more, err := o.podLines(ref, u)
		if err != nil {
			return "", nil, err
		}
		lines = append(lines, more...)
	}
	return st, lines, nil
}

// read Gets one object. Observe never reads a Secret no access rule can show.
func (o *observer) read(ref Ref) (*unstructured.Unstructured, error) {
	if f, ok := o.prefetched[ref]; ok {
		return f.obj, f.err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(ref.GroupVersionKind())
	if err := o.r.Get(o.ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, u); err != nil {
		return nil, err
	}
	return u, nil
}

// classify turns a read error into a status and a stable problem text, or
// returns it wrapped when it says nothing about the object (transport,
// context, overload): those are for the caller to retry.
func classify(err error, ref Ref) (status.Status, string, error) {
	switch {
	case apierrors.IsNotFound(err):
		return status.FailedStatus, "not found", nil
	case meta.IsNoMatchError(err):
		gv := ref.Version
		if ref.Group != "" {
			gv = ref.Group + "/" + ref.Version
		}
		return status.UnknownStatus, "API " + gv + " not served", nil
	case apierrors.IsForbidden(err):
		return status.UnknownStatus, "forbidden", nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		apierrors.IsTimeout(err), apierrors.IsServerTimeout(err),
		apierrors.IsTooManyRequests(err), apierrors.IsServiceUnavailable(err):
		return "", "", fmt.Errorf("reading %s: %w", ref, err)
	}
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return status.UnknownStatus, "read failed: " + clean(err.Error()), nil
	}
	return "", "", fmt.Errorf("reading %s: %w", ref, err)
}

var rank = map[status.Status]int{
	status.CurrentStatus:    0,
	status.UnknownStatus:    1,
	status.InProgressStatus: 2,
	status.FailedStatus:     3,
}

func worse(a, b status.Status) status.Status {
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// isWorkload says whether ref owns pods selected by spec.selector.
func isWorkload(ref Ref) bool {
	switch ref.Group + "/" + ref.Kind {
	case "apps/Deployment", "apps/StatefulSet", "apps/DaemonSet", "apps/ReplicaSet", "batch/Job":
		return true
	}
	return false
}

// summary is the problem text of a non-Current object: "N/M available" for
// replicated workloads missing replicas (with kstatus's message when it
// failed), the phase of a PersistentVolumeClaim, else kstatus's message.
func summary(ref Ref, u *unstructured.Unstructured, res *status.Result) string {
	obj := u.Object
	desired, available := -1, -1
	switch ref.Group + "/" + ref.Kind {
	case "apps/Deployment", "apps/ReplicaSet", "apps/StatefulSet":
		desired = status.GetIntField(obj, ".spec.replicas", 1)
		available = status.GetIntField(obj, ".status.availableReplicas", 0)
	case "apps/DaemonSet":
		desired = status.GetIntField(obj, ".status.desiredNumberScheduled", 0)
		available = status.GetIntField(obj, ".status.numberAvailable", 0)
	case "/PersistentVolumeClaim":
		return status.GetStringField(obj, ".status.phase", "Pending")
	}
	msg := clean(res.Message)
	if msg == "" {
		msg = string(res.Status)
	}
	if desired >= 0 && available < desired {
		s := fmt.Sprintf("%d/%d available", available, desired)
		if res.Status == status.FailedStatus {
			s += ": " + msg
		}
		return s
	}
	return msg
}

// clean makes a cluster-provided message one bounded line.
func clean(s string) string {
	return truncate(strings.Join(strings.Fields(s), " "), maxLine)
}

// truncate cuts s to at most max bytes on a rune boundary, ending with "…".
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

func dedup(lines []string) []string {
	seen := make(map[string]bool, len(lines))
	out := lines[:0:0]
	for _, l := range lines {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

// capLines keeps max lines and replaces the rest with "and N more".
func capLines(lines []string, max int) []string {
	if len(lines) <= max {
		return lines
	}
	return append(slices.Clip(lines[:max]), fmt.Sprintf("and %d more", len(lines)-max))
}

// hostPort joins a host and port the way URLs and kubectl print them.
func hostPort(host string, port int32) string {
	return net.JoinHostPort(host, fmt.Sprint(port))
}
