package tenancy

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NamespaceRoles are the built-in ClusterRoles administrators bind tenants to
// in their namespaces. Flux's installation aggregates its flux-edit and
// flux-view roles into them, which lets every namespace editor write
// HelmReleases directly: such a HelmRelease names any chart and any service
// account, and helm-controller may install it before chartkind puts the
// definition's settings back. Flux's multi-tenancy lockdown removes that
// aggregation.
var NamespaceRoles = []string{"admin", "edit"}

// HelmReleaseGroup is Flux's API group of HelmReleases.
const HelmReleaseGroup = "helm.toolkit.fluxcd.io"

// RoleWatch reads NamespaceRoles every Interval and reports which of them let
// their subjects create, update or patch HelmReleases. It polls with GETs
// rather than watching ClusterRoles, which would cache every ClusterRole of
// the cluster and need list and watch on all of them; a GET of two objects a
// minute is nothing to the API server and writes nothing.
//
// It is a manager Runnable; OnChange is called (from its goroutine) when the
// answer changes, including the first time it is known.
type RoleWatch struct {
	Reader   client.Reader
	Interval time.Duration
	Log      logr.Logger
	OnChange func()

	mu      sync.Mutex
	known   bool
	writers []string
}

// Start polls until ctx is done.
func (w *RoleWatch) Start(ctx context.Context) error {
	interval := w.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		w.poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// NeedLeaderElection is false: it only reads, and a follower's definition
// controller does not run, so OnChange reaches nothing there.
func (w *RoleWatch) NeedLeaderElection() bool { return false }

func (w *RoleWatch) poll(ctx context.Context) {
	var writers []string
	for _, name := range NamespaceRoles {
		cr := &rbacv1.ClusterRole{}
		if err := w.Reader.Get(ctx, types.NamespacedName{Name: name}, cr); err != nil {
			if !apierrors.IsNotFound(err) {
				// Unknown: keep the last answer rather than flap.
				w.Log.V(1).Info("reading ClusterRole failed", "clusterRole", name, "error", err.Error())
				return
			}
			continue
		}
		if WritesHelmReleases(cr.Rules) {
			writers = append(writers, name)
		}
	}
	sort.Strings(writers)
	w.mu.Lock()
	changed := !w.known || !slices.Equal(w.writers, writers)
	w.known, w.writers = true, writers
	w.mu.Unlock()
	if changed {
		w.Log.Info("namespace roles checked", "helmReleaseWriters", writers)
		if w.OnChange != nil {
			w.OnChange()
		}
	}
}

// Writers returns the NamespaceRoles that let their subjects write
// HelmReleases, and whether that is known yet.
func (w *RoleWatch) Writers() ([]string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writers), w.known
}

// WritesHelmReleases reports whether rules allow creating, updating or
// patching HelmReleases (by their group and resource, or wildcards).
func WritesHelmReleases(rules []rbacv1.PolicyRule) bool {
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
			continue
		}
		if !matches(r.APIGroups, HelmReleaseGroup) || !matches(r.Resources, "helmreleases") {
			continue
		}
		if matches(r.Verbs, "create") || matches(r.Verbs, "update") || matches(r.Verbs, "patch") {
			return true
		}
	}
	return false
}

func matches(list []string, want string) bool {
	return slices.Contains(list, want) || slices.Contains(list, "*")
}
