package insight

import (
	"cmp"
	"slices"
	"strings"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Ref identifies one object a release installed, as parsed from the
// HelmRelease inventory. It carries the version too because reading the
// object back needs a full GroupVersionKind, and the inventory is the only
// place that says which version the chart used.
type Ref struct {
	// Namespace is empty for cluster-scoped objects.
	Namespace string
	// Name of the object.
	Name string
	// Group is empty for the core group (Service, Secret, Pod...).
	Group string
	// Kind of the object, e.g. "Deployment".
	Kind string
	// Version is the API version within Group, e.g. "v1".
	Version string
}

// GroupVersionKind returns the GVK used to read the object, because the
// unstructured reads of Observe need it.
func (r Ref) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// String is the object's name as every problem line starts with it:
// "Kind namespace/name", or "Kind name" for a cluster-scoped object, so that
// users recognise the `kubectl get` spelling.
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

func compareRefs(a, b Ref) int {
	return cmp.Or(
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Group, b.Group),
		cmp.Compare(a.Version, b.Version),
	)
}

// Inventory parses hr.Status.Inventory into Refs sorted by kind, namespace,
// name, group and version, without duplicates, because every result derived
// from it must be deterministic. Entries that cannot be parsed are skipped:
// helm-controller writes them, and one bad entry must not hide the others.
// It returns nil when the release has no inventory.
func Inventory(hr *helmv2.HelmRelease) []Ref {
	if hr == nil || hr.Status.Inventory == nil {
		return nil
	}
	refs := make([]Ref, 0, len(hr.Status.Inventory.Entries))
	for _, e := range hr.Status.Inventory.Entries {
		ref, ok := parseID(e.ID)
		if !ok {
			continue
		}
		ref.Version = e.Version
		// Tolerate a "group/version" spelling of the version.
		if i := strings.LastIndexByte(ref.Version, '/'); i >= 0 {
			ref.Version = ref.Version[i+1:]
		}
		if ref.Version == "" {
			continue
		}
		refs = append(refs, ref)
	}
	return sortRefs(refs)
}

// sortRefs sorts refs and drops duplicates, so results built from them are
// deterministic.
func sortRefs(refs []Ref) []Ref {
	slices.SortFunc(refs, compareRefs)
	return slices.Compact(refs)
}

// healthKinds are the kinds whose health Observe reads: what kstatus has rules
// for and what a release's users wait on. Other objects of a release
// (ConfigMaps, ServiceAccounts, RBAC, NetworkPolicies…) are Current as soon as
// they exist, so reading them would cost a request each, and read access to
// every kind, for nothing.
var healthKinds = map[string]bool{
	"apps/Deployment": true, "apps/StatefulSet": true, "apps/DaemonSet": true, "apps/ReplicaSet": true,
	"batch/Job": true, "/Pod": true, "/PersistentVolumeClaim": true, "/Service": true,
	"policy/PodDisruptionBudget": true,
}

// healthKind reports whether ref is of a kind whose health Observe reads.
func healthKind(ref Ref) bool { return healthKinds[ref.Group+"/"+ref.Kind] }

// readKind reports whether Observe may read ref at all: for its health or
// to show it in Access.
func readKind(ref Ref) bool { return healthKind(ref) || accessKind(ref) != "" }

// parseID parses "<namespace>_<name>_<group>_<kind>", the format of
// sigs.k8s.io/cli-utils object.ObjMetadata that helm-controller writes (the
// same algorithm as object.ParseObjMetadata, which is not imported because its
// package pulls kustomize into the binary). Namespaces, names and groups are
// DNS names without "_", so the namespace ends at the first separator and the
// kind starts after the last; group may be empty. RBAC names may contain ":",
// which the format transcodes as "__".
func parseID(id string) (Ref, bool) {
	i := strings.IndexByte(id, '_')
	if i < 0 {
		return Ref{}, false
	}
	ns, rest := id[:i], id[i+1:]
	j := strings.LastIndexByte(rest, '_')
	if j < 0 {
		return Ref{}, false
	}
	kind, rest := rest[j+1:], rest[:j]
	k := strings.LastIndexByte(rest, '_')
	if k < 0 {
		return Ref{}, false
	}
	group, name := rest[k+1:], strings.ReplaceAll(rest[:k], "__", ":")
	if name == "" || kind == "" || strings.Contains(name, "_") {
		return Ref{}, false
	}
	return Ref{Namespace: ns, Name: name, Group: group, Kind: kind}, true
}
