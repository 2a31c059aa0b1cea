package operator

import (
	"sigs.k8s.io/controller-runtime/pkg/manager"

	defctrl "github.com/chartkind/chartkind/internal/controller/definition"
	"github.com/chartkind/chartkind/internal/rbac"
)

// NewKindRoles returns the observer that keeps each served kind's admin, edit
// and view ClusterRoles (see internal/rbac), so that the built-in roles
// Kubernetes users are bound to cover the kinds chartkind adds. It reads
// through the manager's API reader rather than its cache: a cache would watch
// every ClusterRole in the cluster to save three GETs per definition reconcile.
func NewKindRoles(mgr manager.Manager) defctrl.KindObserver {
	return rbac.New(mgr.GetClient(), mgr.GetAPIReader())
}
