// Package insight reads what a Flux HelmRelease installed and condenses it
// into two things an application object's status can show: how a user
// connects to the release (Access) and which of its objects are unhealthy and
// why (Health).
//
// The mirror calls Observe after each reconcile and writes the Report into
// the application's status, so everything here is built to be deterministic
// (sorted slices, messages free of ages, timestamps and back-off durations:
// two calls on an unchanged cluster return equal reports, otherwise the
// operator would rewrite status forever) and bounded (capped problem lists,
// pod lines per workload, release notes and condition messages).
//
// API calls of one Observe, all through the given client.Reader (the
// operator passes its uncached API reader); with Options.FromWatchCache
// (rechecks of a release already observed as it is) each at resourceVersion
// "0", which the API server serves from its watch cache, not from etcd, a
// NotFound confirmed by a quorum read (see watchCacheReader):
//
//   - one Get per inventory object (unstructured, GVK from the inventory;
//     Secrets as metadata only when no access rule can select a Secret, so
//     their values are not fetched for nothing);
//   - for each Deployment, StatefulSet, DaemonSet, ReplicaSet or Job that is
//     not Current: one List of Pods in its namespace matching its
//     spec.selector, and one Get per PersistentVolumeClaim of the (at most 3
//     per workload) reported pods that are not scheduled, each PVC read once;
//   - with Options.Notes: one Get of Helm's release record Secret
//     sh.helm.release.v1.<name>.v<revision> in the storage namespace.
//
// The operator therefore needs get on every kind a chart may install, list
// on pods, get on persistentvolumeclaims and get on secrets in the storage
// namespaces. A Forbidden answer does not fail the report: the object is
// reported as "<Kind> <ns>/<name>: forbidden" so that a deliberately narrow
// RBAC still shows the rest.
package insight
