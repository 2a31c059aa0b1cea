package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/internal/testenv"
)

// statusCost measures what one status write costs the control plane
// (kube-apiserver + etcd CPU per write) in several forms, each on its own
// fresh objects, with two watches on the kind as in the bench: the verb
// (merge patch or update), the schema (free or chartkind's), and the size
// of the status (the ideal's or chartkind's after a release is Ready).
func statusCost(ctx context.Context, env *testenv.Env, cl client.Client, dyn dynamic.Interface, n, workers int) error {
	cp, err := controlPlanePIDs(env.Dir)
	if err != nil {
		return err
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: idealNS}}); err != nil {
		return err
	}
	// Kinds 2 and 3: chartkind's schema without its root CEL rules (on
	// metadata.name), and without any CEL rule.
	for k, schemaKind := range []string{schemaFree, schemaChartkind, schemaChartkind, schemaChartkind} {
		crd, err := idealCRD(k, schemaKind)
		if err != nil {
			return err
		}
		root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
		if k >= 2 {
			root.XValidations = nil
		}
		if k == 3 {
			spec := root.Properties["spec"]
			for name, p := range spec.Properties {
				p.XValidations = nil
				spec.Properties[name] = p
			}
			root.Properties["spec"] = spec
		}
		if err := cl.Create(ctx, crd); err != nil {
			return err
		}
		if err := waitEstablished(ctx, cl, crd); err != nil {
			return err
		}
		for range 2 { // the bench's and the mirror's
			w, err := dyn.Resource(idealGVR(k)).Namespace(idealNS).Watch(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			go func(w watch.Interface) {
				for range w.ResultChan() {
				}
			}(w)
		}
	}
	now := metav1.Now().UTC().Format(time.RFC3339)
	small := map[string]any{"observedGeneration": int64(1),
		"conditions": []any{map[string]any{"type": "Ready", "status": "True", "reason": "InstallSucceeded", "message": "released", "lastTransitionTime": now}}}
	// Chartkind's status as the ideal writes it with -ideal-schema
	// chartkind-status: waiting for a new HelmRelease, and released.
	waiting := shownStatus("create", "bench0-o1", 1, now)
	full := shownStatus("ready", "bench0-o1", 1, now)
	type variant struct {
		name   string
		k      int // 0: free schema, 1: chartkind's
		status map[string]any
		put    bool
	}
	variants := []variant{
		{"patch, small status, free schema (the ideal)", 0, small, false},
		{"patch, small status, chartkind's schema", 1, small, false},
		{"update, small status, chartkind's schema", 1, small, true},
		{"patch, chartkind's status, chartkind's schema", 1, full, false},
		{"update, chartkind's status, chartkind's schema (chartkind)", 1, full, true},
		{"update, chartkind's status, free schema", 0, full, true},
		{"update, chartkind's status, chartkind's schema without its root CEL rules", 2, full, true},
		{"update, chartkind's status, chartkind's schema without CEL rules", 3, full, true},
		{"update, small status, chartkind's schema without CEL rules", 3, small, true},
	}
	// Rounds, each over every form in turn, so that what changes over the
	// run (etcd's size, the API server's heap) weighs on every form alike;
	// the table gives the median round and the range.
	const rounds = 3
	perWrite := make([][]float64, len(variants))
	rate := make([][]float64, len(variants))
	for round := range rounds {
		for vi, v := range variants {
			res := dyn.Resource(idealGVR(v.k)).Namespace(idealNS)
			name := func(i int) string { return fmt.Sprintf("v%d-r%d-o%d", vi, round, i) }
			// Each object as its status write left it: the update of the
			// measured writes starts from it.
			objs := make([]*unstructured.Unstructured, n)
			if err := parallel(ctx, workers, 1, n, func(_, i int) error {
				u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": idealGVR(v.k).GroupVersion().String(), "kind": idealKind(v.k),
					"metadata": map[string]any{"name": name(i), "namespace": idealNS},
					"spec":     map[string]any{"replicas": int64(1), "size": "1Gi", "mode": "a"}}}
				created, err := res.Create(ctx, u, metav1.CreateOptions{})
				if err != nil {
					return err
				}
				created.Object["status"] = waiting
				objs[i], err = res.UpdateStatus(ctx, created, metav1.UpdateOptions{})
				return err
			}); err != nil {
				return fmt.Errorf("%s: creating: %w", v.name, err)
			}
			time.Sleep(2 * time.Second)
			before, err := cpuTimes(cp)
			if err != nil {
				return err
			}
			start := time.Now()
			if err := parallel(ctx, workers, 1, n, func(_, i int) error {
				if v.put {
					u := objs[i].DeepCopy()
					u.Object["status"] = v.status
					_, err := res.UpdateStatus(ctx, u, metav1.UpdateOptions{})
					return err
				}
				patch, _ := json.Marshal(map[string]any{"status": v.status})
				_, err := res.Patch(ctx, name(i), types.MergePatchType, patch, metav1.PatchOptions{}, "status")
				return err
			}); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			took := time.Since(start)
			time.Sleep(300 * time.Millisecond) // the watches' last events
			after, err := cpuTimes(cp)
			if err != nil {
				return err
			}
			used := after - before
			perWrite[vi] = append(perWrite[vi], float64(used)/float64(time.Millisecond)/float64(n))
			rate[vi] = append(rate[vi], float64(n)/took.Seconds())
			fmt.Fprintf(os.Stderr, "[bench] round %d: %s: %.2f ms per write\n", round+1, v.name, perWrite[vi][round])
		}
	}
	fmt.Fprintf(os.Stderr, "\n| status write (%d objects × %d rounds, %d workers, 2 watches) | control plane CPU per write: median (range) | writes/s, median |\n|---|---|---|\n", n, rounds, workers)
	for vi, v := range variants {
		p, r := slices.Clone(perWrite[vi]), slices.Clone(rate[vi])
		slices.Sort(p)
		slices.Sort(r)
		fmt.Fprintf(os.Stderr, "| %s | %.2f ms (%.2f–%.2f) | %.0f |\n", v.name, p[rounds/2], p[0], p[rounds-1], r[rounds/2])
	}
	return nil
}
