package main

// The ideal mirror: the least work any mirror of chartkind's design must do
// per object, written as plainly as possible with client-go, and measured in
// the same run, on the same API server, with the same client limits
// (--kube-api-qps, twice that as burst, 8 workers) as the operator.
//
//   - create: a watch event of the object, a GET of it, the HelmRelease's
//     create, one status write (status.release, Ready=Unknown);
//   - Ready: a watch event of the HelmRelease, one status write (merge patch
//     of Ready=True and observedGeneration);
//   - update: a watch event of the object (new generation), a GET of it, a
//     merge patch of the HelmRelease's values, one status write.
//
// It runs as a separate process (the bench binary started again with
// -ideal-mirror), so that, like the operator, it has its own CPU and its own
// client rate limiter. It does nothing else: no validation, no conflict
// handling, no deletion, no events, no metrics, no adoption, no insight.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/internal/generate"
	"github.com/chartkind/chartkind/internal/testenv"
)

const (
	idealNS    = "ideal"
	idealGroup = "ideal.bench.chartkind.io"
)

func idealKind(k int) string                 { return fmt.Sprintf("Ideal%d", k) }
func idealRelease(k int, name string) string { return fmt.Sprintf("ideal%d-%s", k, name) }
func idealGVR(k int) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: idealGroup, Version: "v1", Resource: fmt.Sprintf("ideal%ds", k)}
}

// idealItem is one unit of work of the ideal mirror.
type idealItem struct {
	k    int
	name string
	op   string // create, ready, update
	gen  int64  // ready: the object generation released
}

// runIdealMirror is the ideal mirror's process: it mirrors the objects of
// kinds ideal kinds in namespace ideal until SIGTERM.
// With shown, it writes the status chartkind writes in each phase instead
// of the least one (schemaChartkindStatus).
func runIdealMirror(kubeconfig string, kinds int, qps float64, workers int, shown bool) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = float32(qps), int(2*qps)
	// The same client limits as the operator's: controller-runtime gives
	// each resource its own REST client, and so its own QPS and burst, in
	// the client that writes and again in the API reader that reads.
	newClient := func() (dynamic.Interface, error) { return dynamic.NewForConfig(rest.CopyConfig(cfg)) }
	dyn, err := newClient()
	if err != nil {
		return err
	}
	cl := &idealClients{}
	for k := 0; k < kinds; k++ {
		r, err1 := newClient()
		w, err2 := newClient()
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		cl.read = append(cl.read, r)
		cl.write = append(cl.write, w)
	}
	if cl.hr, err = newClient(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	q := workqueue.NewTyped[idealItem]()
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, idealNS, nil)
	for k := 0; k < kinds; k++ {
		k := k
		inf := factory.ForResource(idealGVR(k)).Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				u := obj.(*unstructured.Unstructured)
				// Not yet mirrored. (On chartkind's CRD a new object has a
				// status already: the schema's default, which says InProgress.)
				if _, ok, _ := unstructured.NestedMap(u.Object, "status", "release"); !ok {
					q.Add(idealItem{k: k, name: u.GetName(), op: "create"})
				}
			},
			UpdateFunc: func(o, n any) {
				if o.(*unstructured.Unstructured).GetGeneration() != n.(*unstructured.Unstructured).GetGeneration() {
					q.Add(idealItem{k: k, name: n.(*unstructured.Unstructured).GetName(), op: "update"})
				}
			},
		}); err != nil {
			return err
		}
	}
	hrInf := factory.ForResource(hrGVR).Informer()
	if _, err := hrInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(o, n any) {
			ou, nu := o.(*unstructured.Unstructured), n.(*unstructured.Unstructured)
			if readyGeneration(nu) != 0 && readyGeneration(nu) != readyGeneration(ou) {
				k, _ := strconv.Atoi(nu.GetLabels()["ideal/kind"])
				q.Add(idealItem{k: k, name: nu.GetLabels()["ideal/name"], op: "ready", gen: readyGeneration(nu)})
			}
		},
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	fmt.Println("synced")

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				it, shutdown := q.Get()
				if shutdown {
					return
				}
				if err := idealWork(ctx, cl, it, shown); err != nil && ctx.Err() == nil {
					fmt.Fprintf(os.Stderr, "ideal mirror: %s %d/%s: %v\n", it.op, it.k, it.name, err)
				}
				q.Done(it)
			}
		}()
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
	return nil
}

// readyGeneration is the object generation a HelmRelease says it released
// (its object-generation annotation), once Ready=True for its own
// generation; 0 before that.
func readyGeneration(hr *unstructured.Unstructured) int64 {
	conds, _, _ := unstructured.NestedSlice(hr.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		og, _ := m["observedGeneration"].(int64)
		if m["type"] == "Ready" && m["status"] == "True" && og == hr.GetGeneration() {
			g, _ := strconv.ParseInt(hr.GetAnnotations()["ideal/generation"], 10, 64)
			return g
		}
	}
	return 0
}

// idealClients are the ideal mirror's clients: per kind, one that reads
// objects and one that writes them, and one that writes HelmReleases.
type idealClients struct {
	read, write []dynamic.Interface
	hr          dynamic.Interface
}

func idealWork(ctx context.Context, cl *idealClients, it idealItem, shown bool) error {
	reads := cl.read[it.k].Resource(idealGVR(it.k)).Namespace(idealNS)
	objs := cl.write[it.k].Resource(idealGVR(it.k)).Namespace(idealNS)
	hrs := cl.hr.Resource(hrGVR).Namespace(idealNS)
	now := metav1.Now().UTC().Format(time.RFC3339)
	switch it.op {
	case "create":
		obj, err := reads.Get(ctx, it.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		spec, _, _ := unstructured.NestedMap(obj.Object, "spec")
		gen := strconv.FormatInt(obj.GetGeneration(), 10)
		hr := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
			"metadata": map[string]any{"name": idealRelease(it.k, it.name), "namespace": idealNS,
				"labels":      map[string]any{"ideal/kind": strconv.Itoa(it.k), "ideal/name": it.name},
				"annotations": map[string]any{"ideal/generation": gen}},
			"spec": map[string]any{"interval": "10m", "values": spec,
				"chart": map[string]any{"spec": map[string]any{"chart": "ideal", "version": "*",
					"sourceRef": map[string]any{"kind": "HelmRepository", "name": "bench", "namespace": idealNS}}}},
		}}
		if _, err := hrs.Create(ctx, hr, metav1.CreateOptions{}); err != nil {
			return err
		}
		obj.Object["status"] = map[string]any{"release": map[string]any{"name": hr.GetName(), "namespace": idealNS},
			"conditions": []any{map[string]any{"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": "waiting", "lastTransitionTime": now}}}
		if shown {
			obj.Object["status"] = shownStatus("create", hr.GetName(), obj.GetGeneration(), now)
		}
		_, err = objs.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		return err
	case "ready":
		status := map[string]any{"observedGeneration": it.gen,
			"conditions": []any{map[string]any{"type": "Ready", "status": "True", "reason": "InstallSucceeded", "message": "released", "lastTransitionTime": now}}}
		if shown {
			status = shownStatus("ready", idealRelease(it.k, it.name), it.gen, now)
		}
		patch, _ := json.Marshal(map[string]any{"status": status})
		_, err := objs.Patch(ctx, it.name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
		return err
	case "update":
		obj, err := reads.Get(ctx, it.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		spec, _, _ := unstructured.NestedMap(obj.Object, "spec")
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{"ideal/generation": strconv.FormatInt(obj.GetGeneration(), 10)}},
			"spec": map[string]any{"values": spec}})
		if _, err := hrs.Patch(ctx, idealRelease(it.k, it.name), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return err
		}
		status := map[string]any{
			"conditions": []any{map[string]any{"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": "waiting", "lastTransitionTime": now}}}
		if shown {
			status = shownStatus("update", idealRelease(it.k, it.name), obj.GetGeneration(), now)
		}
		patch, _ = json.Marshal(map[string]any{"status": status})
		_, err = objs.Patch(ctx, it.name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
		return err
	}
	return nil
}

// side is one mirror under measurement, as the bench drives it: where its
// objects and HelmReleases live and the watches that see them.
type side struct {
	ns      string
	gvr     schema.GroupVersionResource // of kind 0, which the single changes use
	kind    string
	release func(name string) string
	hrs     *tracker
	objs    *tracker // of kind 0
	// beforeReady, when set, creates what a release installed, untimed.
	beforeReady func(ctx context.Context, hr *helmv2.HelmRelease) error
}

// singleChanges makes n changes of each phase one at a time, each once the
// previous one is mirrored, so every change meets an idle mirror: create →
// HelmRelease exists, HelmRelease Ready → object Ready, spec update →
// HelmRelease values updated.
func singleChanges(ctx context.Context, cl client.Client, dyn dynamic.Interface, s side, n int) ([3][]time.Duration, error) {
	var out [3][]time.Duration
	name := func(i int) string { return fmt.Sprintf("single%d", i) }
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := createObjectIn(ctx, dyn, s.gvr, s.kind, s.ns, name(i), 1, ""); err != nil {
			return out, err
		}
		if err := s.hrs.waitSeen(ctx, s.release(name(i)), time.Minute); err != nil {
			return out, fmt.Errorf("single create %s: %w", name(i), err)
		}
		at, _ := s.hrs.seenAt(s.release(name(i)))
		out[0] = append(out[0], at.Sub(start))
	}
	// Let the mirror finish what followed each create (its status write).
	time.Sleep(time.Second)
	for i := 0; i < n; i++ {
		hr := &helmv2.HelmRelease{}
		if err := cl.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: s.release(name(i))}, hr); err != nil {
			return out, err
		}
		if s.beforeReady != nil {
			if err := s.beforeReady(ctx, hr); err != nil {
				return out, err
			}
		}
		s.objs.expect(isReadyAt(1))
		markReleased(hr, 1)
		start := time.Now()
		if err := cl.Status().Update(ctx, hr); err != nil {
			return out, err
		}
		at, err := waitMatched(ctx, s.objs, name(i))
		if err != nil {
			return out, fmt.Errorf("single Ready %s: %w", name(i), err)
		}
		out[1] = append(out[1], at.Sub(start))
	}
	for i := 0; i < n; i++ {
		s.hrs.expect(func(u *unstructured.Unstructured) bool {
			v, _, _ := unstructured.NestedInt64(u.Object, "spec", "values", "replicas")
			return v == 2
		})
		start := time.Now()
		if _, err := dyn.Resource(s.gvr).Namespace(s.ns).Patch(ctx, name(i), types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}); err != nil {
			return out, err
		}
		at, err := waitMatched(ctx, s.hrs, s.release(name(i)))
		if err != nil {
			return out, fmt.Errorf("single update %s: %w", name(i), err)
		}
		out[2] = append(out[2], at.Sub(start))
	}
	return out, nil
}

// waitMatched waits until t saw name match its expectation (not before it
// was set) and returns when.
func waitMatched(ctx context.Context, t *tracker, name string) (time.Time, error) {
	var at time.Time
	err := pollUntil(ctx, time.Minute, func() (bool, error) {
		a, ok := t.matchedAt(name)
		at = a
		return ok && !a.IsZero(), nil
	})
	return at, err
}

// waitEstablished waits until the API server serves crd.
func waitEstablished(ctx context.Context, cl client.Client, crd *apiextensionsv1.CustomResourceDefinition) error {
	if err := pollUntil(ctx, time.Minute, func() (bool, error) {
		if err := cl.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return fmt.Errorf("CRD %s never established: %w", crd.Name, err)
	}
	return nil
}

// idealResult is what the ideal mirror achieved in the same run.
type idealResult struct {
	schema string        // schemaFree, schemaChartkind or schemaChartkindStatus
	phases []phaseResult // create, Ready, update
	single [3][]time.Duration
}

// measureIdeal runs the ideal mirror on c.kinds × c.objects objects of its
// own kinds in namespace ideal, through the same bulk phases as chartkind,
// then single changes; then removes all of it, so that chartkind's run
// starts from the same API server state.
func measureIdeal(ctx context.Context, env *testenv.Env, cl client.Client, dyn dynamic.Interface, c config, schemaKind string) (*idealResult, error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[bench] ideal mirror ("+schemaKind+" schema): "+format+"\n", args...)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for k := 0; k < c.kinds; k++ {
		crd, err := idealCRD(k, schemaKind)
		if err != nil {
			return nil, err
		}
		if err := cl.Create(ctx, crd); err != nil {
			return nil, err
		}
		crds = append(crds, crd)
	}
	for _, crd := range crds {
		if err := waitEstablished(ctx, cl, crd); err != nil {
			return nil, err
		}
	}
	// A second measurement (-ideal-schema both) finds the namespace there.
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: idealNS}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	hrs := newTracker()
	stopHR, err := watchAll(ctx, dyn, hrGVR, idealNS, hrs)
	if err != nil {
		return nil, err
	}
	defer stopHR()
	objs := make([]*tracker, c.kinds)
	for k := range objs {
		objs[k] = newTracker()
		stop, err := watchAll(ctx, dyn, idealGVR(k), idealNS, objs[k])
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	proc, err := startIdeal(ctx, env, c, schemaKind == schemaChartkindStatus)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			proc.stop()
		}
	}()
	res := &idealResult{schema: schemaKind}
	total := c.kinds * c.objects
	// The ideal's CPU and the control plane's, per phase, as the operator's
	// are measured: from the phase's first change to its last one mirrored.
	cp, err := controlPlanePIDs(env.Dir)
	if err != nil {
		return nil, err
	}
	cpu := func() (counters, error) {
		var now counters
		var err error
		if now.opCPU, err = cpuTime(proc.cmd.Process.Pid); err != nil {
			return counters{}, err
		}
		if now.cpCPU, err = cpuTimes(cp); err != nil {
			return counters{}, err
		}
		return now, nil
	}
	var start counters
	phaseEnd := func(lat []time.Duration, began time.Time) error {
		now, err := cpu()
		if err != nil {
			return err
		}
		p := phaseResult{lat: lat, wall: time.Since(began), perObject: total, ops: now.sub(start)}
		res.phases = append(res.phases, p)
		// Said now too: a run that fails later keeps these figures.
		logf("phase %d: %.1f objects/s; CPU per object: mirror %.2f ms, control plane %.2f ms",
			len(res.phases), float64(total)/p.wall.Seconds(), p.perCPU(p.ops.opCPU), p.perCPU(p.ops.cpCPU))
		return nil
	}

	logf("creating %d objects", total)
	createdAt := newTimes()
	if start, err = cpu(); err != nil {
		return nil, err
	}
	phase := time.Now()
	if err := parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
		name := fmt.Sprintf("o%d", i)
		createdAt.set(idealRelease(k, name), time.Now())
		return createObjectIn(ctx, dyn, idealGVR(k), idealKind(k), idealNS, name, 1, "")
	}); err != nil {
		return nil, err
	}
	lat, err := collect(ctx, createdAt, 10*time.Minute, hrs.seenAt)
	if err != nil {
		return nil, fmt.Errorf("ideal create → HelmRelease: %w", err)
	}
	if err := phaseEnd(lat, phase); err != nil {
		return nil, err
	}

	// What the releases installed, as in chartkind's run: the ideal does
	// not read it, but the API server then holds as much as it holds for
	// chartkind's Ready and update phases (4 objects more per object, in
	// its watch cache and heap), which its CPU per request depends on.
	if c.idealInstalled {
		logf("creating what the %d releases installed (untimed)", total)
		if err := installReleases(ctx, cl, c, idealNS, idealRelease); err != nil {
			return nil, err
		}
	}

	logf("writing Ready on %d HelmReleases", total)
	for _, t := range objs {
		t.expect(isReadyAt(1))
	}
	at := newTimes()
	if start, err = cpu(); err != nil {
		return nil, err
	}
	phase = time.Now()
	if err := parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
		name := fmt.Sprintf("o%d", i)
		hr := &helmv2.HelmRelease{}
		if err := cl.Get(ctx, types.NamespacedName{Namespace: idealNS, Name: idealRelease(k, name)}, hr); err != nil {
			return err
		}
		markReleased(hr, 1)
		at.set(objectKey(k, name), time.Now())
		return cl.Status().Update(ctx, hr)
	}); err != nil {
		return nil, err
	}
	if lat, err = collect(ctx, at, 10*time.Minute, matchedInKind(objs)); err != nil {
		return nil, fmt.Errorf("ideal Ready: %w", err)
	}
	if err := phaseEnd(lat, phase); err != nil {
		return nil, err
	}

	logf("updating the spec of %d objects", total)
	hrs.expect(func(u *unstructured.Unstructured) bool {
		v, _, _ := unstructured.NestedInt64(u.Object, "spec", "values", "replicas")
		return v == 2
	})
	updatedAt := newTimes()
	if start, err = cpu(); err != nil {
		return nil, err
	}
	phase = time.Now()
	if err := parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
		name := fmt.Sprintf("o%d", i)
		updatedAt.set(idealRelease(k, name), time.Now())
		_, err := dyn.Resource(idealGVR(k)).Namespace(idealNS).Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
		return err
	}); err != nil {
		return nil, err
	}
	if lat, err = collect(ctx, updatedAt, 10*time.Minute, hrs.matchedAt); err != nil {
		return nil, fmt.Errorf("ideal update: %w", err)
	}
	if err := phaseEnd(lat, phase); err != nil {
		return nil, err
	}

	if c.single > 0 {
		logf("%d single changes of each phase", c.single)
		time.Sleep(2 * time.Second)
		res.single, err = singleChanges(ctx, cl, dyn, side{ns: idealNS, gvr: idealGVR(0), kind: idealKind(0),
			release: func(n string) string { return idealRelease(0, n) }, hrs: hrs, objs: objs[0]}, c.single)
		if err != nil {
			return nil, err
		}
	}
	proc.stop()
	stopped = true

	logf("removing its objects, HelmReleases and CRDs")
	removing := time.Now()
	if err := cl.DeleteAllOf(ctx, &helmv2.HelmRelease{}, client.InNamespace(idealNS)); err != nil {
		return nil, err
	}
	if c.idealInstalled {
		if err := cl.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(idealNS), client.MatchingLabels{"app.kubernetes.io/managed-by": "Helm"}); err != nil {
			return nil, err
		}
		if err := cl.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(idealNS), client.MatchingLabels{"owner": "helm"}); err != nil { // release records
			return nil, err
		}
		if err := parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: idealNS, Name: idealRelease(k, fmt.Sprintf("o%d", i))}}
			return client.IgnoreNotFound(cl.Delete(ctx, svc))
		}); err != nil {
			return nil, err
		}
	}
	for _, crd := range crds {
		if err := cl.Delete(ctx, crd); err != nil {
			return nil, err
		}
	}
	// The API server deletes a CRD's objects one by one: at 10,000 objects,
	// on an etcd grown by earlier measurements, that has taken over 5 min.
	if err := pollUntil(ctx, 20*time.Minute, func() (bool, error) {
		var list apiextensionsv1.CustomResourceDefinitionList
		if err := cl.List(ctx, &list); err != nil {
			return false, err
		}
		for _, crd := range list.Items {
			if crd.Spec.Group == idealGroup {
				return false, nil
			}
		}
		var hrList helmv2.HelmReleaseList
		if err := cl.List(ctx, &hrList, client.InNamespace(idealNS)); err != nil {
			return false, err
		}
		return len(hrList.Items) == 0, nil
	}); err != nil {
		return nil, fmt.Errorf("ideal mirror's objects not gone: %w", err)
	}
	logf("removed in %s", time.Since(removing).Round(time.Second))
	return res, nil
}

// The schemas the ideal mirror's kinds can have (-ideal-schema).
const (
	// schemaFree: spec and status accept anything (x-kubernetes-preserve-unknown-fields):
	// the API server validates, prunes and converts nothing, the least
	// work any CRD can cost it.
	schemaFree = "free"
	// schemaChartkind: the CRD chartkind generates for the bench's
	// definition (generate.CRD, as `chartkind generate` does), under the
	// ideal's group and names: the same spec and status schemas and CEL
	// name rules, which the API server checks on every write of an object,
	// the bench's own writes included. Against this ideal, a gap is
	// chartkind's own work; against the free one, it also holds the API
	// server's validation of the schema, which chartkind exists to have.
	schemaChartkind = "chartkind"
	// schemaChartkindStatus: chartkind's CRD, and the ideal writes in each
	// phase the status chartkind writes (shownStatus) instead of the least
	// one. Against this ideal, a gap is only chartkind's own CPU and round
	// trips: the API server's work for the schema and for what chartkind
	// shows users (three conditions, access, endpoint, digest) is the
	// ideal's too.
	schemaChartkindStatus = "chartkind-status"
)

// shownStatus is the status chartkind writes on object name's release in
// a phase of the bench, as a release the bench marked Ready has it (the
// Service and release notes the bench installs; insight on): in create,
// waiting for the new HelmRelease; in ready, released; in update, waiting
// for the HelmRelease to process generation gen, the rest as released.
func shownStatus(phase, release string, gen int64, now string) map[string]any {
	waiting := map[string]any{"type": "Ready", "status": "Unknown", "reason": "Progressing",
		"message": fmt.Sprintf("waiting for HelmRelease %s to process generation %d", release, gen), "lastTransitionTime": now}
	digest := fmt.Sprintf("sha256:%064x", gen)
	ref := map[string]any{"name": release, "namespace": idealNS}
	if phase == "create" {
		return map[string]any{"observedGeneration": int64(0), "release": ref, "valuesDigest": digest, "conditions": []any{waiting}}
	}
	msg := fmt.Sprintf("Helm install succeeded for release %s/%s.v1 with chart bench@1.0.0", idealNS, release)
	ready := map[string]any{"type": "Ready", "status": "True", "reason": "InstallSucceeded", "message": msg, "lastTransitionTime": now, "observedGeneration": int64(1)}
	if phase == "update" {
		ready = waiting
		gen = 1
	}
	return map[string]any{"observedGeneration": gen,
		"conditions": []any{
			ready,
			map[string]any{"type": "Released", "status": "True", "reason": "InstallSucceeded", "message": msg, "lastTransitionTime": now, "observedGeneration": int64(1)},
			map[string]any{"type": "Healthy", "status": "True", "reason": "Healthy", "message": "all 1 objects of the release are Current", "lastTransitionTime": now},
		},
		"version": "1.0.0", "valuesDigest": digest, "release": ref,
		"endpoint": release + "." + idealNS + ".svc:80",
		"access": map[string]any{"notes": fmt.Sprintf("1. Reach the application from inside the cluster:\n  http://%[1]s.%[2]s.svc:80\n2. Or from your machine:\n  kubectl -n %[2]s port-forward svc/%[1]s 8080:80\n\nRevision 1 of chart bench-1.0.0.", release, idealNS),
			"services": []any{map[string]any{"clusterIP": "None", "dns": release + "." + idealNS + ".svc", "name": release, "type": "ClusterIP",
				"ports": []any{map[string]any{"name": "http", "port": int64(80), "protocol": "TCP", "targetPort": "http"}}}}},
	}
}

func idealCRD(k int, schemaKind string) (*apiextensionsv1.CustomResourceDefinition, error) {
	gvr := idealGVR(k)
	if schemaKind == schemaChartkind || schemaKind == schemaChartkindStatus {
		def := benchDefinition(idealKind(k))
		def.Spec.Application.Group = idealGroup
		res, err := generate.CRD(generate.Input{Definition: def})
		if err != nil {
			return nil, fmt.Errorf("generating the ideal's CRD %s: %w", gvr.Resource, err)
		}
		// The ideal's objects are reached by idealGVR (its version is not chartkind's).
		crd := res.CRD
		crd.Name, crd.Spec.Names.Plural, crd.Spec.Versions[0].Name = gvr.Resource+"."+gvr.Group, gvr.Resource, gvr.Version
		return crd, nil
	}
	free := &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptrTo(true)}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: gvr.Resource + "." + gvr.Group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: gvr.Group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: idealKind(k), ListKind: idealKind(k) + "List", Plural: gvr.Resource, Singular: strings.ToLower(idealKind(k))},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: gvr.Version, Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": *free, "status": *free}}}}},
		},
	}, nil
}

func ptrTo[T any](v T) *T { return &v }

type idealProcess struct{ cmd *exec.Cmd }

// startIdeal starts the ideal mirror's process and waits for its caches;
// with shown, it writes chartkind's status (schemaChartkindStatus).
func startIdeal(ctx context.Context, env *testenv.Env, c config, shown bool) (*idealProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(env.Dir, "logs", "ideal-mirror.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-ideal-mirror", "-ideal-kubeconfig", env.KubeconfigPath, "-kinds", strconv.Itoa(c.kinds),
		"-operator-qps", fmt.Sprint(c.operatorQPS), "-reconcilers", strconv.Itoa(c.reconcilers), "-ideal-shown-status="+strconv.FormatBool(shown))
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &idealProcess{cmd: cmd}
	synced := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "synced" {
				close(synced)
			}
		}
	}()
	select {
	case <-synced:
		return p, nil
	case <-time.After(time.Minute):
	case <-ctx.Done():
	}
	p.stop()
	return nil, fmt.Errorf("the ideal mirror never synced (log: %s)", logFile.Name())
}

func (p *idealProcess) stop() { stopGroup(p.cmd) }
