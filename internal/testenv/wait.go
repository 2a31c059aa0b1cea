package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// pollInterval is short because everything runs locally; the API server copes easily.
const pollInterval = 100 * time.Millisecond

// WaitFor calls cond until it returns nil, failing the test with cond's last error after
// timeout. cond reports why the condition does not hold yet, which makes timeouts explain
// themselves ("Ready=False: install retries exhausted" rather than "timed out").
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	if err := Poll(context.Background(), timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// Poll is WaitFor returning the error instead of failing a test (for TestMain or goroutines).
func Poll(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	err := poll(ctx, pollInterval, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err == nil {
		return nil
	}
	if last == nil {
		return fmt.Errorf("timed out after %s", timeout)
	}
	return fmt.Errorf("timed out after %s: %w", timeout, last)
}

// WaitForReady waits until obj (any kind with kstatus-style status: Flux objects, chartkind's)
// has condition Ready=True for its current generation, then reads it into obj.
//
// Ready alone is not enough: right after a change, Ready is still the previous generation's
// True until the controller has observed the change. So it also requires
// status.observedGeneration == metadata.generation (and the condition's own observedGeneration,
// when set, to match).
func (e *Env) WaitForReady(t testing.TB, obj client.Object, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("%s %s to be Ready", e.kindOf(obj), client.ObjectKeyFromObject(obj)), func(ctx context.Context) error {
		u, err := e.getUnstructured(ctx, obj)
		if err != nil {
			return err
		}
		if err := readyForGeneration(u); err != nil {
			return err
		}
		return e.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	})
}

// readyForGeneration returns nil if u is Ready=True for its current generation, else why not.
func readyForGeneration(u *unstructured.Unstructured) error {
	gen := u.GetGeneration()
	observed, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if !found || observed != gen {
		return fmt.Errorf("status.observedGeneration=%d, metadata.generation=%d", observed, gen)
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		cond, ok := c.(map[string]any)
		if !ok || cond["type"] != "Ready" {
			continue
		}
		if og, ok := cond["observedGeneration"].(int64); ok && og != gen {
			return fmt.Errorf("Ready condition is for generation %d, not %d", og, gen)
		}
		if cond["status"] != "True" {
			return fmt.Errorf("Ready=%v (%v): %v", cond["status"], cond["reason"], cond["message"])
		}
		return nil
	}
	return errors.New("no Ready condition yet")
}

// WaitForDeleted waits until obj no longer exists (finalizers included).
func (e *Env) WaitForDeleted(t testing.TB, obj client.Object, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("%s %s to be deleted", e.kindOf(obj), client.ObjectKeyFromObject(obj)), func(ctx context.Context) error {
		u, err := e.getUnstructured(ctx, obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("still exists (deletionTimestamp=%v, finalizers=%v)", u.GetDeletionTimestamp(), u.GetFinalizers())
	})
}

// ReconcileRequestAnnotation is Flux's annotation for an immediate reconciliation.
const ReconcileRequestAnnotation = "reconcile.fluxcd.io/requestedAt"

// RequestReconcile asks a Flux controller to reconcile obj now (like `flux reconcile`) and waits
// until it has handled the request (status.lastHandledReconcileAt). Use it after publishing a
// chart version: otherwise the HelmRepository only sees it at its next interval.
func (e *Env) RequestReconcile(t testing.TB, obj client.Object, timeout time.Duration) {
	t.Helper()
	token := time.Now().UTC().Format(time.RFC3339Nano)
	u, err := e.emptyUnstructured(obj)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	u.SetNamespace(obj.GetNamespace())
	u.SetName(obj.GetName())
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, ReconcileRequestAnnotation, token)
	if err := e.Client.Patch(context.Background(), u, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("testenv: requesting reconciliation of %s: %v", client.ObjectKeyFromObject(obj), err)
	}
	WaitFor(t, timeout, fmt.Sprintf("%s %s to handle reconcile request %s", e.kindOf(obj), client.ObjectKeyFromObject(obj), token), func(ctx context.Context) error {
		u, err := e.getUnstructured(ctx, obj)
		if err != nil {
			return err
		}
		handled, _, _ := unstructured.NestedString(u.Object, "status", "lastHandledReconcileAt")
		if handled != token {
			return fmt.Errorf("status.lastHandledReconcileAt=%q", handled)
		}
		return nil
	})
}

func (e *Env) emptyUnstructured(obj client.Object) (*unstructured.Unstructured, error) {
	gvk, err := apiutil.GVKForObject(obj, e.Scheme)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// getUnstructured reads obj's current state generically, so that status can be inspected for
// any kind without knowing its Go type.
func (e *Env) getUnstructured(ctx context.Context, obj client.Object) (*unstructured.Unstructured, error) {
	u, err := e.emptyUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return u, e.Client.Get(ctx, client.ObjectKeyFromObject(obj), u)
}

func (e *Env) kindOf(obj client.Object) string {
	if gvk, err := apiutil.GVKForObject(obj, e.Scheme); err == nil {
		return gvk.Kind
	}
	return fmt.Sprintf("%T", obj)
}
