package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/engine"
	"github.com/chartkind/chartkind/internal/insight"
	"github.com/chartkind/chartkind/internal/mapsize"
	"github.com/chartkind/chartkind/internal/metrics"
)

// Healthy condition reasons and events.
const (
	ReasonHealthy      = "Healthy"
	ReasonProgressingH = "Progressing"
	ReasonUnhealthy    = "Unhealthy"
	ReasonNotInstalled = "NotInstalled"
	ReasonCheckFailed  = "CheckFailed"
	// ReasonRemoteCluster: the release is installed into another cluster,
	// whose objects chartkind cannot read (the message says why).
	ReasonRemoteCluster = "RemoteCluster"

	EventUnhealthy = "Unhealthy"
	EventHealthy   = "Healthy"
)

// InsightOptions turn on what chartkind tells users about what their release
// installed: health below the HelmRelease and access information.
type InsightOptions struct {
	// Reader reads the release's objects; the operator passes its live API
	// reader, so nothing of the cluster is cached for this.
	Reader client.Reader
	// ReleaseNotes allows reading Helm's release records (Secrets) for the
	// notes; definitions can still hide them.
	ReleaseNotes bool
	// HealthyInterval is how often the objects of a healthy release are read
	// again, to notice workloads that degrade after install; default 5m.
	HealthyInterval time.Duration
	// MinRecheck and MaxRecheck bound the backoff between reads of an
	// unhealthy release; defaults 5s and 5m.
	MinRecheck, MaxRecheck time.Duration
}

// observerState remembers, per object, what is needed to read little: the
// revision whose notes are in the object's status, and the recheck backoff.
type observerState struct {
	mu    sync.Mutex
	notes map[string]int       // release revision whose notes the status holds
	since map[string]time.Time // when the object was last seen healthy and settled, or first seen otherwise
	// sincePeak: since holds the objects not yet healthy, all of them in a
	// bulk phase and few after it, and is rebuilt smaller then (mapsize).
	sincePeak mapsize.Peak
	// remotes are the clients of the clusters releases install into (spec.kubeConfig).
	remotes remoteClients
	// last is, per object, the release status last observed and shown in
	// the object's status, and when it is due to be observed again.
	last map[string]observation
}

// observation is one release observed and shown: a reconcile before due,
// of a release whose status did not change since, has nothing new to read
// (the objects a release installed change along with its status, and the
// recheck at due covers those that degrade later), so it reads nothing.
// Reconciles of an object's spec change, of chartkind's own HelmRelease
// writes, or of operations thus cost no insight reads.
type observation struct {
	fingerprint uint64
	due         time.Time
}

// releaseFingerprint digests what an observation depends on: the
// HelmRelease's status, and the definition's access rules. Not the
// HelmRelease's spec: what the release installed changes when
// helm-controller acts on a new spec, and that changes the status.
func releaseFingerprint(def *v1alpha1.ApplicationDefinition, hr *helmv2.HelmRelease) uint64 {
	h := fnv.New64a()
	// What chartkind reads of the status, as its cache keeps it: a write's
	// response or a live read carries more (the whole history, other
	// fields), which must not make a difference.
	b, err := json.Marshal(engine.ReadStatus(hr.Status))
	if err != nil {
		return 0
	}
	_, _ = h.Write(b)
	_, _ = fmt.Fprintf(h, "|%s|%d|%t", def.UID, def.Generation, hr.Spec.KubeConfig != nil)
	return h.Sum64()
}

// EnableInsight makes every status sync also read what the release installed.
func (m *Mirror) EnableInsight(o InsightOptions) {
	if o.HealthyInterval <= 0 {
		o.HealthyInterval = 5 * time.Minute
	}
	if o.MinRecheck <= 0 {
		o.MinRecheck = 5 * time.Second
	}
	if o.MaxRecheck <= 0 {
		o.MaxRecheck = 5 * time.Minute
	}
	m.insight = &o
	m.observed = &observerState{notes: map[string]int{}, since: map[string]time.Time{}, last: map[string]observation{},
		remotes: remoteClients{clients: map[string]remoteClient{}}}
}

// forget drops what is remembered of a deleted object (kind/namespace/name).
func (m *Mirror) forget(uid string) {
	m.written.forget(uid)
	if m.observed == nil {
		return
	}
	m.observed.mu.Lock()
	delete(m.observed.notes, uid)
	delete(m.observed.since, uid)
	m.observed.since = mapsize.Shrink(m.observed.since, &m.observed.sincePeak)
	delete(m.observed.last, uid)
	m.observed.mu.Unlock()
}

// observe fills st's Healthy condition and access information from what hr
// installed, and says when to look again. It reads; it never writes. When
// st already shows an observation of the release as it is now, and it is
// not due again, it reads nothing (observation).
//
// shownAsIs says the object's status already mirrors the HelmRelease's as
// it is now. For an object the operator has not observed since it started,
// a healthy observation it shows is then taken as current, and the first
// recheck is spread over the healthy interval: a restart at 100,000
// objects would otherwise read every release at once, although none
// changed. A release that changed meanwhile changed its status, and is read.
func (m *Mirror) observe(ctx context.Context, t *target, obj *unstructured.Unstructured, hr *helmv2.HelmRelease, st *objectStatus, shownAsIs func() bool) time.Duration {
	if m.insight == nil {
		return 0
	}
	uid := t.uid()
	fp := releaseFingerprint(t.def, hr)
	now := m.now()
	m.observed.mu.Lock()
	last, ok := m.observed.last[uid]
	m.observed.mu.Unlock()
	healthy := findCondition(st.Conditions, ConditionHealthy)
	if !ok && healthy != nil && healthy.Status == metav1.ConditionTrue && settled(hr) && m.showsWhatIsWanted(t, st) && shownAsIs() {
		last = observation{fingerprint: fp, due: now.Add(time.Second + rand.N(m.insight.HealthyInterval))}
		m.observed.mu.Lock()
		m.observed.last[uid] = last
		if st.Access != nil && st.Access.Notes != "" {
			m.observed.notes[uid] = latestRevision(hr)
		}
		m.observed.mu.Unlock()
		ok = true
	}
	if ok && last.fingerprint == fp && now.Before(last.due.Add(-time.Second)) && healthy != nil {
		metrics.InsightSkipped.WithLabelValues(t.gvk.Kind).Inc()
		return last.due.Sub(now)
	}
	// A recheck of a release whose status is as last observed reads from
	// the API server's watch cache; the first observation of a new status
	// reads from etcd: an object the watch cache still holds as it was
	// before an upgrade could look healthy, and would be shown so until the
	// next recheck.
	recheck := ok && last.fingerprint == fp
	d := m.observeNow(ctx, t, obj, hr, st, recheck)
	t.observed = nil
	if d > 0 {
		t.observed = &observation{fingerprint: fp, due: now.Add(d)}
	}
	return d
}

// showsWhatIsWanted reports whether what st shows of the release is
// allowed by the current settings as far as can be told without reading:
// the definition selects no access objects (their rules may have changed
// while the operator was down), and notes are shown only if wanted.
func (m *Mirror) showsWhatIsWanted(t *target, st *objectStatus) bool {
	access := t.def.Spec.Access
	if access != nil && len(access.Objects) > 0 {
		return false
	}
	wantNotes := m.insight.ReleaseNotes && (access == nil || access.ReleaseNotes != v1alpha1.ReleaseNotesHide)
	return wantNotes || st.Access == nil || st.Access.Notes == ""
}

// shown records the observation of this reconcile once its status was
// written (or was already in the object): only then does the object show it.
func (m *Mirror) shown(t *target) {
	if m.observed == nil || t.observed == nil {
		return
	}
	m.observed.mu.Lock()
	m.observed.last[t.uid()] = *t.observed
	m.observed.mu.Unlock()
}

func (m *Mirror) observeNow(ctx context.Context, t *target, obj *unstructured.Unstructured, hr *helmv2.HelmRelease, st *objectStatus, recheck bool) time.Duration {
	o := m.insight
	uid := t.uid()
	reader := o.Reader
	if hr.Spec.KubeConfig != nil {
		// The release's objects are in another cluster: read them there
		// with its kubeconfig, never this cluster's objects of the same
		// names.
		remote, err := m.remoteReader(ctx, hr)
		if err != nil {
			st.Access, st.Endpoint = nil, ""
			st.setCondition(metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionUnknown, Reason: ReasonRemoteCluster,
				Message: truncateMessage("not reading the objects of HelmRelease " + hr.Name + " in the cluster of its spec.kubeConfig: " + err.Error())})
			return m.backoff(uid, false)
		}
		reader = remote
	}
	if hr.Status.Inventory == nil && (len(hr.Status.Conditions) == 0 || settled(hr)) {
		// helm-controller has not started on the release, or is done with it
		// and recorded no inventory: nothing to read. Its next status change
		// brings us back (while it installs, the manifest is read instead).
		st.setCondition(metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionUnknown, Reason: ReasonNotInstalled,
			Message: "HelmRelease " + hr.Name + " has installed nothing yet"})
		return 0
	}
	access := t.def.Spec.Access
	opts := insight.Options{FromWatchCache: recheck}
	wantNotes := o.ReleaseNotes && (access == nil || access.ReleaseNotes != v1alpha1.ReleaseNotesHide)
	if access != nil {
		opts.Rules = access.Objects
	}
	revision := latestRevision(hr)
	m.observed.mu.Lock()
	haveNotes := m.observed.notes[uid] == revision && revision > 0 && st.Access != nil
	m.observed.mu.Unlock()
	// The notes of one revision never change: read the record once per revision.
	opts.Notes = wantNotes && !haveNotes

	start := time.Now()
	rep, err := insight.Observe(ctx, reader, hr, opts)
	metrics.ObserveInsight(t.gvk.Kind, time.Since(start), err)
	if err != nil {
		st.setCondition(metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionUnknown, Reason: ReasonCheckFailed,
			Message: truncateMessage("reading the objects of HelmRelease " + hr.Name + ": " + err.Error())})
		return m.backoff(uid, false)
	}

	if hr.Status.Inventory == nil && rep.Health.Checked == 0 {
		// Nothing installed, nor being installed, yet.
		st.setCondition(metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionUnknown, Reason: ReasonNotInstalled,
			Message: "HelmRelease " + hr.Name + " has installed nothing yet"})
		if settled(hr) {
			return 0 // the HelmRelease's own events bring us back
		}
		return m.backoff(uid, false)
	}

	a := toAccessStatus(rep.Access)
	switch {
	case !wantNotes:
		a.Notes = ""
	case haveNotes:
		a.Notes = st.Access.Notes
	default:
		m.observed.mu.Lock()
		m.observed.notes[uid] = revision
		m.observed.mu.Unlock()
	}
	if a.empty() {
		st.Access = nil
	} else {
		st.Access = a
	}
	st.Endpoint = rep.Access.Endpoint

	c := metav1.Condition{Type: ConditionHealthy, Message: rep.Health.Message()}
	switch rep.Health.Status {
	case insight.StatusCurrent:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonHealthy
	case insight.StatusInProgress:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonProgressingH
	case insight.StatusFailed:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonUnhealthy
	default:
		c.Status, c.Reason = metav1.ConditionUnknown, ReasonCheckFailed
	}
	st.setCondition(c)
	// While helm-controller is acting on the release (installing, upgrading,
	// waiting for it), its objects change without the HelmRelease changing:
	// look again soon, so that the cause of a wait that will time out is
	// shown while it waits.
	return m.backoff(uid, c.Status == metav1.ConditionTrue && settled(hr))
}

// sameReady reports whether the object's Ready condition o is what the
// HelmRelease's r gives (the mirror may add to the message).
func sameReady(o, r *metav1.Condition) bool {
	if o == nil || r == nil {
		return o == nil && r == nil
	}
	return o.Status == r.Status && o.Reason == r.Reason && strings.HasPrefix(o.Message, strings.TrimSuffix(r.Message, "."))
}

// settled reports whether helm-controller is done with hr's current generation.
func settled(hr *helmv2.HelmRelease) bool {
	ready := findCondition(hr.Status.Conditions, ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != hr.Generation {
		return false
	}
	r := findCondition(hr.Status.Conditions, "Reconciling")
	return r == nil || r.Status != metav1.ConditionTrue
}

// backoff returns when to observe again: at HealthyInterval while healthy,
// else after a quarter of the time the release has been unhealthy (or
// unsettled), from MinRecheck up to MaxRecheck. It depends on that time only,
// not on how often the release was observed: HelmRelease events observe too,
// and must not stretch the interval.
func (m *Mirror) backoff(uid string, healthy bool) time.Duration {
	o := m.insight
	m.observed.mu.Lock()
	defer m.observed.mu.Unlock()
	if healthy {
		delete(m.observed.since, uid)
		m.observed.since = mapsize.Shrink(m.observed.since, &m.observed.sincePeak)
		return o.HealthyInterval
	}
	now := m.now()
	since, ok := m.observed.since[uid]
	if !ok {
		m.observed.since[uid] = now
		m.observed.since = mapsize.Shrink(m.observed.since, &m.observed.sincePeak)
		since = now
	}
	d := now.Sub(since) / 4
	if d < o.MinRecheck {
		d = o.MinRecheck
	}
	if d > o.MaxRecheck {
		d = o.MaxRecheck
	}
	return d
}

// healthEvents records a Warning when the release's objects become unhealthy
// or why they are changes, and a Normal event when they recover.
func (m *Mirror) healthEvents(obj *unstructured.Unstructured, hr *helmv2.HelmRelease, old, cur *objectStatus) {
	oc, nc := findCondition(old.Conditions, ConditionHealthy), findCondition(cur.Conditions, ConditionHealthy)
	if nc == nil {
		return
	}
	switch {
	case nc.Status == metav1.ConditionFalse && (oc == nil || oc.Status != metav1.ConditionFalse || oc.Message != nc.Message):
		m.warn(obj, hr, EventUnhealthy, "CheckHealth", "%s", nc.Message)
	case nc.Status == metav1.ConditionTrue && oc != nil && oc.Status == metav1.ConditionFalse:
		m.normal(obj, hr, EventHealthy, "CheckHealth", "%s", nc.Message)
	}
}

// truncateMessage bounds a condition message, cutting at a character boundary.
func truncateMessage(s string) string {
	if len(s) <= insight.MaxMessage {
		return s
	}
	cut := insight.MaxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// latestRevision is the newest Helm revision in hr's history (without
// Snapshots.Latest, which sorts the HelmRelease's history in place).
func latestRevision(hr *helmv2.HelmRelease) int {
	v := 0
	for _, s := range hr.Status.History {
		if s != nil && s.Version > v {
			v = s.Version
		}
	}
	return v
}

// accessStatus is status.access (crd.StatusSchema).
type accessStatus struct {
	Services  []serviceStatus `json:"services,omitempty"`
	Ingresses []ingressStatus `json:"ingresses,omitempty"`
	Secrets   []secretStatus  `json:"secrets,omitempty"`
	Notes     string          `json:"notes,omitempty"`
	Omitted   []string        `json:"omitted,omitempty"`
}

type serviceStatus struct {
	Name      string       `json:"name"`
	Type      string       `json:"type,omitempty"`
	ClusterIP string       `json:"clusterIP,omitempty"`
	DNS       string       `json:"dns,omitempty"`
	Ports     []portStatus `json:"ports,omitempty"`
	External  []string     `json:"external,omitempty"`
}

type portStatus struct {
	Name       string `json:"name,omitempty"`
	Port       int32  `json:"port"`
	Protocol   string `json:"protocol,omitempty"`
	TargetPort string `json:"targetPort,omitempty"`
	NodePort   int32  `json:"nodePort,omitempty"`
}

type ingressStatus struct {
	Name  string   `json:"name"`
	Class string   `json:"class,omitempty"`
	URLs  []string `json:"urls,omitempty"`
}

type secretStatus struct {
	Name string   `json:"name"`
	Keys []string `json:"keys,omitempty"`
}

func (a *accessStatus) empty() bool {
	return len(a.Services) == 0 && len(a.Ingresses) == 0 && len(a.Secrets) == 0 && a.Notes == "" && len(a.Omitted) == 0
}

// toAccessStatus copies what the object's status shows. Objects of the
// release live in its namespace (or the definition's target namespace), so
// names alone are shown, qualified only when in another namespace.
func toAccessStatus(a insight.Access) *accessStatus {
	out := &accessStatus{Notes: a.Notes, Omitted: a.Omitted}
	for _, s := range a.Services {
		ss := serviceStatus{Name: s.Name, Type: s.Type, ClusterIP: s.ClusterIP, DNS: s.DNS, External: s.External}
		for _, p := range s.Ports {
			ss.Ports = append(ss.Ports, portStatus{Name: p.Name, Port: p.Port, Protocol: p.Protocol, TargetPort: p.TargetPort, NodePort: p.NodePort})
		}
		out.Services = append(out.Services, ss)
	}
	for _, i := range a.Ingresses {
		out.Ingresses = append(out.Ingresses, ingressStatus{Name: i.Name, Class: i.Class, URLs: i.URLs})
	}
	for _, s := range a.Secrets {
		out.Secrets = append(out.Secrets, secretStatus{Name: s.Name, Keys: s.Keys})
	}
	return out
}

// stuckButHealthy tells a user whose release failed but whose objects are now
// healthy that only a retry is missing.
func stuckButHealthy(st *objectStatus) bool {
	h := findCondition(st.Conditions, ConditionHealthy)
	return h != nil && h.Status == metav1.ConditionTrue
}
