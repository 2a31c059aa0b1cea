package mirror

import (
	"context"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/definition"
	"github.com/chartkind/chartkind/internal/engine"
)

// The recheck interval of an unhealthy release grows with how long it has
// been unhealthy, not with how many events observed it, and resets once
// healthy.
func TestBackoffGrowsWithTimeNotEvents(t *testing.T) {
	m := &Mirror{}
	m.EnableInsight(InsightOptions{})
	now := time.Unix(0, 0)
	m.now = func() time.Time { return now }
	for range 50 { // many HelmRelease events at the start
		if d := m.backoff("k", false); d != 5*time.Second {
			t.Fatalf("backoff at the start = %s, want 5s", d)
		}
	}
	now = now.Add(2 * time.Minute)
	if d := m.backoff("k", false); d != 30*time.Second {
		t.Errorf("backoff after 2m unhealthy = %s, want 30s", d)
	}
	now = now.Add(time.Hour)
	if d := m.backoff("k", false); d != 5*time.Minute {
		t.Errorf("backoff after an hour = %s, want the 5m cap", d)
	}
	if d := m.backoff("k", true); d != 5*time.Minute {
		t.Errorf("healthy recheck = %s, want HealthyInterval 5m", d)
	}
	if d := m.backoff("k", false); d != 5*time.Second {
		t.Errorf("backoff after recovering and failing again = %s, want 5s", d)
	}
}

// countingReader counts the reads release insight makes.
type countingReader struct {
	client.Reader
	gets int
	rvs  []string // the resourceVersion of each read: "" from etcd, "0" from the watch cache
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.gets++
	o := &client.GetOptions{}
	o.ApplyOptions(opts)
	r.rvs = append(r.rvs, o.AsGetOptions().ResourceVersion)
	return r.Reader.Get(ctx, key, obj, opts...)
}

// lastRV is the resourceVersion of the last read.
func (r *countingReader) lastRV() string {
	if len(r.rvs) == 0 {
		return "none"
	}
	return r.rvs[len(r.rvs)-1]
}

// A reconcile of an object that already shows its release as it is reads
// nothing of what the release installed until the recheck is due; a change
// of the release's status, an object status without the observation, or
// the due time make it read again; an observation whose status was never
// written is not remembered.
func TestObserveReadsOnlyWhatChanged(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.1", Ports: []corev1.ServicePort{{Port: 80}}}}
	reader := &countingReader{Reader: fake.NewClientBuilder().WithObjects(svc).Build()}
	m := &Mirror{}
	m.EnableInsight(InsightOptions{Reader: reader, HealthyInterval: time.Minute})
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	def := testDef("web", "Web", "web")
	hr := testRelease("ns", "web-a", "web", "")
	hr.Generation = 1
	hr.Status.Inventory = &helmv2.ResourceInventory{Entries: []helmv2.ResourceRef{{ID: "ns_web__Service", Version: "v1"}}}
	hr.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, ObservedGeneration: 1, Reason: "InstallSucceeded"}}
	obj := &unstructured.Unstructured{Object: map[string]any{}}
	reconcile := func(st *objectStatus, written bool) (*objectStatus, time.Duration) {
		tg := &target{def: def, names: definition.Effective(def), gvk: GVK(def), key: types.NamespacedName{Namespace: "ns", Name: "a"}}
		d := m.observe(context.Background(), tg, obj, hr, st, func() bool { return false })
		if written {
			m.shown(tg)
		}
		return st, d
	}

	st, d := reconcile(&objectStatus{}, false)
	if reader.gets != 1 || d != time.Minute || findCondition(st.Conditions, ConditionHealthy) == nil {
		t.Fatalf("first observation: %d reads, recheck %s, conditions %v", reader.gets, d, st.Conditions)
	}
	if reader.lastRV() != "" {
		t.Errorf("first observation read at resourceVersion %q, want a quorum read", reader.lastRV())
	}
	// Its status write failed: the next reconcile reads again.
	reconcile(st.deepCopy(), false)
	if reader.gets != 2 {
		t.Fatalf("an observation never shown was remembered: %d reads", reader.gets)
	}
	st, _ = reconcile(st.deepCopy(), true)
	shown := st
	now = now.Add(20 * time.Second)
	if _, d := reconcile(shown.deepCopy(), true); reader.gets != 3 || d != 40*time.Second {
		t.Errorf("release unchanged, recheck not due: %d reads (want none more), recheck in %s (want 40s)", reader.gets, d)
	}
	// A spec change of the HelmRelease (chartkind's own write of new
	// values): nothing was installed yet, nothing to read.
	hr.Generation = 2
	if reconcile(shown.deepCopy(), true); reader.gets != 3 {
		t.Errorf("a HelmRelease spec change alone was observed: %d reads", reader.gets)
	}
	if reconcile(&objectStatus{}, true); reader.gets != 4 {
		t.Errorf("an object status without the observation was not observed: %d reads", reader.gets)
	}
	hr.Status.Conditions[0].Reason = "UpgradeSucceeded"
	if reconcile(shown.deepCopy(), true); reader.gets != 5 || reader.lastRV() != "" {
		t.Errorf("a release status change was not observed from etcd: %d reads, the last at resourceVersion %q", reader.gets, reader.lastRV())
	}
	now = now.Add(time.Minute)
	if reconcile(shown.deepCopy(), true); reader.gets != 6 || reader.lastRV() != "0" {
		t.Errorf("a due recheck was not observed from the watch cache: %d reads, the last at resourceVersion %q", reader.gets, reader.lastRV())
	}
	m.forget((&target{gvk: GVK(def), key: types.NamespacedName{Namespace: "ns", Name: "a"}}).uid())
	if reconcile(shown.deepCopy(), true); reader.gets != 7 {
		t.Errorf("a forgotten object's observation was kept: %d reads", reader.gets)
	}
}

// After a restart, an object whose status mirrors its HelmRelease as it is
// and shows it healthy is not read at once: its first recheck is spread
// over the healthy interval. One that shows it unhealthy, or whose
// HelmRelease's status is not what it shows, is read.
func TestObserveAfterRestart(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}}
	reader := &countingReader{Reader: fake.NewClientBuilder().WithObjects(svc).Build()}
	def := testDef("web", "Web", "web")
	hr := testRelease("ns", "web-a", "web", "")
	hr.Generation = 1
	hr.Status.Inventory = &helmv2.ResourceInventory{Entries: []helmv2.ResourceRef{{ID: "ns_web__Service", Version: "v1"}}}
	hr.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, ObservedGeneration: 1, Reason: "InstallSucceeded"}}
	notes := true
	observe := func(health metav1.ConditionStatus, shownAsIs bool) time.Duration {
		m := &Mirror{now: time.Now} // a fresh process
		m.EnableInsight(InsightOptions{Reader: reader, HealthyInterval: time.Minute, ReleaseNotes: notes})
		st := &objectStatus{Access: &accessStatus{Notes: "connect with…"}}
		st.setCondition(metav1.Condition{Type: ConditionHealthy, Status: health, Reason: "x"})
		tg := &target{def: def, names: definition.Effective(def), gvk: GVK(def), key: types.NamespacedName{Namespace: "ns", Name: "a"}}
		return m.observe(context.Background(), tg, &unstructured.Unstructured{Object: map[string]any{}}, hr, st, func() bool { return shownAsIs })
	}
	for range 20 {
		if d := observe(metav1.ConditionTrue, true); reader.gets != 0 || d <= 0 || d > time.Minute+time.Second {
			t.Fatalf("healthy and in step after a restart: %d reads, first recheck in %s (want none, within the 1m interval)", reader.gets, d)
		}
	}
	if observe(metav1.ConditionFalse, true); reader.gets != 1 {
		t.Errorf("unhealthy after a restart: %d reads, want 1", reader.gets)
	}
	if observe(metav1.ConditionTrue, false); reader.gets != 2 {
		t.Errorf("HelmRelease changed while the operator was down: %d reads, want 1 more", reader.gets)
	}
	// What may be shown may have changed while the operator was down: notes
	// turned off, or access rules the status cannot be checked against.
	notes = false
	if observe(metav1.ConditionTrue, true); reader.gets != 3 {
		t.Errorf("notes shown but no longer wanted: %d reads, want 1 more", reader.gets)
	}
	notes = true
	def.Spec.Access = &v1alpha1.AccessSpec{Objects: []v1alpha1.AccessRule{{Kind: "Service"}}}
	if observe(metav1.ConditionTrue, true); reader.gets != 4 {
		t.Errorf("a definition with access rules: %d reads, want 1 more", reader.gets)
	}
}

// The fingerprint of a release does not depend on how much of its history
// a copy holds (the cache keeps the first and the latest snapshot, a write's
// response all of them), and changes with the latest snapshot.
func TestReleaseFingerprintIgnoresOldHistory(t *testing.T) {
	def := testDef("web", "Web", "web")
	full := testRelease("ns", "web-a", "web", "")
	full.Status.History = helmv2.Snapshots{{Version: 4, Status: "deployed"}, {Version: 3}, {Version: 2}, {Version: 1}}
	trimmed := full.DeepCopy()
	trimmed.Status.History = helmv2.Snapshots{trimmed.Status.History[0]}
	if releaseFingerprint(def, full) != releaseFingerprint(def, trimmed) {
		t.Error("the fingerprint depends on old history")
	}
	// The cache trims the status to what chartkind reads; an Update's
	// response has all of it.
	cached, err := engine.TrimRelease(full.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	full.Status.LastAttemptedRevision, full.Status.LastAttemptedConfigDigest = "1.0.0", "sha256:x"
	full.Status.History[0].Digest, full.Status.History[0].FirstDeployed = "sha256:y", metav1.Now()
	if releaseFingerprint(def, full) != releaseFingerprint(def, cached.(*helmv2.HelmRelease)) {
		t.Error("the fingerprint differs between a cached and a full HelmRelease")
	}
	upgraded := full.DeepCopy()
	upgraded.Status.History[0].Status = "superseded"
	if releaseFingerprint(def, full) == releaseFingerprint(def, upgraded) {
		t.Error("the fingerprint ignores the latest snapshot")
	}
}
