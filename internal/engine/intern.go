package engine

import (
	"strings"
	"sync"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Strings decoded from the API server are each a fresh allocation: with
// 100,000 cached HelmReleases, the same label keys, annotation keys, kinds
// and condition reasons are held 100,000 times. intern returns one shared
// copy of each. Only fields with few distinct values are interned (never
// names, UIDs, messages or values); the table is bounded all the same, so
// a cluster with unusually many distinct keys costs at most maxInterned
// entries, and past that the strings are simply kept as decoded.
var interned struct {
	m sync.Map // string → string
	n atomic.Int64
}

const maxInterned = 4096

func intern(s string) string {
	if s == "" {
		return s
	}
	if v, ok := interned.m.Load(s); ok {
		return v.(string)
	}
	if interned.n.Load() >= maxInterned {
		return s
	}
	// A clone: s could share its bytes with a larger decoded buffer.
	v, loaded := interned.m.LoadOrStore(s, strings.Clone(s))
	if !loaded {
		interned.n.Add(1)
	}
	return v.(string)
}

// internKeys returns m with its keys interned (values are left as they
// are: a label's value is often a name). A map keeps the key it was first
// given, so the map is built anew.
func internKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[intern(k)] = v
	}
	return out
}

// internMeta interns what repeats across the objects of a kind: the type,
// the namespace, label and annotation keys, owners' kinds and finalizers.
func internMeta(t *metav1.TypeMeta, m *metav1.ObjectMeta) {
	t.APIVersion, t.Kind = intern(t.APIVersion), intern(t.Kind)
	m.Namespace = intern(m.Namespace)
	m.Labels = internKeys(m.Labels)
	m.Annotations = internKeys(m.Annotations)
	for i := range m.OwnerReferences {
		r := &m.OwnerReferences[i]
		r.APIVersion, r.Kind = intern(r.APIVersion), intern(r.Kind)
	}
	for i := range m.Finalizers {
		m.Finalizers[i] = intern(m.Finalizers[i])
	}
}
