package mirror

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"k8s.io/apimachinery/pkg/api/equality"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxmeta "github.com/fluxcd/pkg/apis/meta"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// objectStatus is the status of an application object (crd.StatusSchema).
type objectStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	Version            string             `json:"version,omitempty"`
	AppVersion         string             `json:"appVersion,omitempty"`
	Failures           int64              `json:"failures,omitempty"`
	InstallFailures    int64              `json:"installFailures,omitempty"`
	UpgradeFailures    int64              `json:"upgradeFailures,omitempty"`
	ValuesDigest       string             `json:"valuesDigest,omitempty"`
	Release            *releaseRef        `json:"release,omitempty"`
	// LastHandledReconcileAt is the last reconcile request helm-controller handled.
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
	// Endpoint and Access say how to reach what the release installed.
	Endpoint string        `json:"endpoint,omitempty"`
	Access   *accessStatus `json:"access,omitempty"`
}

type releaseRef struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

func readStatus(obj *unstructured.Unstructured) (*objectStatus, error) {
	st := &objectStatus{}
	raw, ok := obj.Object["status"].(map[string]any)
	if !ok {
		return st, nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, st); err != nil {
		return nil, fmt.Errorf("reading status of %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	return st, nil
}

func (s *objectStatus) toUnstructured() (map[string]any, error) {
	return runtime.DefaultUnstructuredConverter.ToUnstructured(s)
}

func (s *objectStatus) deepCopy() *objectStatus {
	out := *s
	out.Conditions = nil
	for _, c := range s.Conditions {
		out.Conditions = append(out.Conditions, *c.DeepCopy())
	}
	if s.Release != nil {
		r := *s.Release
		out.Release = &r
	}
	return &out
}

func (s *objectStatus) equal(o *objectStatus) bool {
	a, _ := json.Marshal(s)
	b, _ := json.Marshal(o)
	return bytes.Equal(a, b)
}

// setCondition sets c, keeping the last transition time when the status did not change.
func (s *objectStatus) setCondition(c metav1.Condition) {
	if c.LastTransitionTime.IsZero() {
		c.LastTransitionTime = metav1.Now()
	}
	if cur := meta.FindStatusCondition(s.Conditions, c.Type); cur != nil && cur.Status == c.Status {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	c.LastTransitionTime = metav1.NewTime(c.LastTransitionTime.Rfc3339Copy().Time)
	meta.RemoveStatusCondition(&s.Conditions, c.Type)
	s.Conditions = append(s.Conditions, c)
	sortConditions(s.Conditions)
}

func (s *objectStatus) removeCondition(t string) { meta.RemoveStatusCondition(&s.Conditions, t) }

var conditionOrder = map[string]int{"Ready": 0, "Healthy": 1, "Released": 2, "Reconciling": 3, "Stalled": 4, "Suspended": 5}

func sortConditions(cs []metav1.Condition) {
	rank := func(t string) int {
		if r, ok := conditionOrder[t]; ok {
			return r
		}
		return 100
	}
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && (rank(cs[j].Type) < rank(cs[j-1].Type) || (rank(cs[j].Type) == rank(cs[j-1].Type) && cs[j].Type < cs[j-1].Type)); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

func findCondition(cs []metav1.Condition, t string) *metav1.Condition {
	return meta.FindStatusCondition(cs, t)
}

// copyCondition copies a HelmRelease condition for the object; the
// HelmRelease's generation means nothing on the object.
func copyCondition(c *metav1.Condition) metav1.Condition {
	out := *c.DeepCopy()
	out.ObservedGeneration = 0
	if out.Reason == "" {
		out.Reason = ReasonProgressing
	}
	return out
}

// ownedFields are the HelmRelease spec fields the definition owns.
type ownedFields struct {
	Chart              *helmv2.HelmChartTemplate
	ChartRef           *helmv2.CrossNamespaceSourceReference
	Interval           metav1.Duration
	Timeout            *metav1.Duration
	Install            *helmv2.Install
	Upgrade            *helmv2.Upgrade
	ValuesFrom         []helmv2.ValuesReference
	ServiceAccountName string
	TargetNamespace    string
	ReleaseName        string
	StorageNamespace   string
	MaxHistory         *int
	DependsOn          []helmv2.DependencyReference
	KubeConfig         *fluxmeta.KubeConfigReference
	DriftDetection     *helmv2.DriftDetection
	HealthCheckExprs   []kustomize.CustomHealthCheck
	PostRenderers      []helmv2.PostRenderer
	Test               *helmv2.Test
	Rollback           *helmv2.Rollback
	Uninstall          *helmv2.Uninstall
	// OwnsDependsOn: dependsOn is restored even when empty, because
	// chartkind set it before (a user removed the last dependency).
	OwnsDependsOn bool
}

func ownedOf(s *helmv2.HelmReleaseSpec) ownedFields {
	return ownedFields{
		Chart: s.Chart, ChartRef: s.ChartRef, Interval: s.Interval, Timeout: s.Timeout,
		Install: s.Install, Upgrade: s.Upgrade, ValuesFrom: s.ValuesFrom,
		ServiceAccountName: s.ServiceAccountName, TargetNamespace: s.TargetNamespace, ReleaseName: s.ReleaseName,
		StorageNamespace: s.StorageNamespace, MaxHistory: s.MaxHistory, DependsOn: s.DependsOn, KubeConfig: s.KubeConfig,
		DriftDetection: s.DriftDetection, HealthCheckExprs: s.HealthCheckExprs, PostRenderers: s.PostRenderers,
		Test: s.Test, Rollback: s.Rollback, Uninstall: s.Uninstall,
	}
}

// restoreOn puts back on s each release setting the definition sets, field by
// field. A setting the definition leaves unset is left as it is on s (an
// adopted HelmRelease keeps its own valuesFrom or target namespace), and
// server-side defaults inside a setting are not mistaken for edits
// (DeepDerivative: unset fields of the wanted value match anything). The
// release name is set only on HelmReleases chartkind creates: changing it on an
// existing one would make Helm uninstall and reinstall the release.
func (o ownedFields) restoreOn(s *helmv2.HelmReleaseSpec, creating bool) {
	d := equality.Semantic.DeepDerivative
	if o.Chart != nil && (s.Chart == nil || !d(*o.Chart, *s.Chart) || s.ChartRef != nil) {
		s.Chart, s.ChartRef = o.Chart, nil
	}
	if o.ChartRef != nil && (s.ChartRef == nil || !d(*o.ChartRef, *s.ChartRef) || s.Chart != nil) {
		s.Chart, s.ChartRef = nil, o.ChartRef
	}
	if o.Interval.Duration != 0 && o.Interval != s.Interval {
		s.Interval = o.Interval
	}
	if o.Timeout != nil && (s.Timeout == nil || *o.Timeout != *s.Timeout) {
		s.Timeout = o.Timeout
	}
	if o.Install != nil && (s.Install == nil || !d(*o.Install, *s.Install)) {
		s.Install = o.Install
	}
	if o.Upgrade != nil && (s.Upgrade == nil || !d(*o.Upgrade, *s.Upgrade)) {
		s.Upgrade = o.Upgrade
	}
	if len(o.ValuesFrom) > 0 && !d(o.ValuesFrom, s.ValuesFrom) {
		s.ValuesFrom = o.ValuesFrom
	}
	if o.ServiceAccountName != "" && o.ServiceAccountName != s.ServiceAccountName {
		s.ServiceAccountName = o.ServiceAccountName
	}
	if o.TargetNamespace != "" && o.TargetNamespace != s.TargetNamespace {
		s.TargetNamespace = o.TargetNamespace
	}
	if o.StorageNamespace != "" && o.StorageNamespace != s.StorageNamespace {
		s.StorageNamespace = o.StorageNamespace
	}
	if o.MaxHistory != nil && (s.MaxHistory == nil || *o.MaxHistory != *s.MaxHistory) {
		s.MaxHistory = o.MaxHistory
	}
	// Lists are owned whole: an entry added on the HelmRelease is removed,
	// since DeepDerivative would let a longer list pass.
	if (len(o.DependsOn) > 0 || o.OwnsDependsOn) && !equality.Semantic.DeepEqual(o.DependsOn, s.DependsOn) {
		s.DependsOn = o.DependsOn
	}
	if o.KubeConfig != nil && (s.KubeConfig == nil || !d(*o.KubeConfig, *s.KubeConfig)) {
		s.KubeConfig = o.KubeConfig
	}
	if o.DriftDetection != nil && (s.DriftDetection == nil || !d(*o.DriftDetection, *s.DriftDetection)) {
		s.DriftDetection = o.DriftDetection
	}
	if len(o.HealthCheckExprs) > 0 && (len(o.HealthCheckExprs) != len(s.HealthCheckExprs) || !d(o.HealthCheckExprs, s.HealthCheckExprs)) {
		s.HealthCheckExprs = o.HealthCheckExprs
	}
	if len(o.PostRenderers) > 0 && (len(o.PostRenderers) != len(s.PostRenderers) || !d(o.PostRenderers, s.PostRenderers)) {
		s.PostRenderers = o.PostRenderers
	}
	if o.Test != nil && (s.Test == nil || !d(*o.Test, *s.Test)) {
		s.Test = o.Test
	}
	if o.Rollback != nil && (s.Rollback == nil || !d(*o.Rollback, *s.Rollback)) {
		s.Rollback = o.Rollback
	}
	if o.Uninstall != nil && (s.Uninstall == nil || !d(*o.Uninstall, *s.Uninstall)) {
		s.Uninstall = o.Uninstall
	}
	if creating {
		s.ReleaseName = o.ReleaseName
	}
}

// specValues returns the object's spec as values.
func specValues(obj *unstructured.Unstructured) (map[string]any, error) {
	raw, ok := obj.Object["spec"]
	if !ok || raw == nil {
		return nil, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s %s/%s: spec is not an object", obj.GetKind(), obj.GetNamespace(), obj.GetName())
	}
	return m, nil
}

// decodeValues decodes HelmRelease values; nil for none.
func decodeValues(v *apiextensionsv1.JSON) (map[string]any, error) {
	if v == nil || len(v.Raw) == 0 || string(v.Raw) == "null" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(v.Raw, &m); err != nil {
		return nil, fmt.Errorf("values are not a JSON object: %w", err)
	}
	return m, nil
}

// canonicalJSON encodes values with sorted keys, so equal values encode equally.
func canonicalJSON(values map[string]any) []byte {
	if len(values) == 0 {
		return []byte("{}")
	}
	// Round-trip through generic JSON so numbers from unstructured (int64) and
	// from JSON (float64) encode alike; encoding/json sorts map keys.
	b, err := json.Marshal(values)
	if err != nil {
		return []byte("{}")
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return b
	}
	out, err := json.Marshal(generic)
	if err != nil {
		return b
	}
	return out
}

// digest identifies values: the sha256 of their canonical JSON.
func digest(values map[string]any) string {
	sum := sha256.Sum256(canonicalJSON(values))
	return "sha256:" + hex.EncodeToString(sum[:])
}
