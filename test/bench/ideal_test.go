package main

import (
	"slices"
	"testing"
	"time"

	"github.com/chartkind/chartkind/internal/crd"
)

// The ideal mirror reaches its objects by idealGVR whatever their schema:
// on chartkind's schema its CRD must serve that resource, and carry the
// bench definition's spec schema, not only accept anything.
func TestIdealCRDSchemas(t *testing.T) {
	for _, schemaKind := range []string{schemaFree, schemaChartkind} {
		c, err := idealCRD(3, schemaKind)
		if err != nil {
			t.Fatalf("%s: %v", schemaKind, err)
		}
		gvr := idealGVR(3)
		v := c.Spec.Versions[0]
		if c.Name != gvr.Resource+"."+gvr.Group || c.Spec.Group != gvr.Group || c.Spec.Names.Plural != gvr.Resource || v.Name != gvr.Version || c.Spec.Names.Kind != idealKind(3) {
			t.Errorf("%s: CRD %s serves %s/%s %s (kind %s), want %s", schemaKind, c.Name, c.Spec.Group, v.Name, c.Spec.Names.Plural, c.Spec.Names.Kind, gvr)
		}
		spec := v.Schema.OpenAPIV3Schema.Properties["spec"]
		_, typed := spec.Properties["replicas"]
		free := spec.XPreserveUnknownFields != nil && *spec.XPreserveUnknownFields
		// chartkind's spec keeps unknown fields too (the bench's schema
		// allows additional properties), but declares and checks its own.
		if typed != (schemaKind == schemaChartkind) || (schemaKind == schemaFree && !free) {
			t.Errorf("%s: spec declares replicas %v, preserves unknown fields %v", schemaKind, typed, free)
		}
		if schemaKind == schemaChartkind {
			if err := crd.Validate(c); err != nil {
				t.Errorf("the ideal's CRD on chartkind's schema is invalid: %v", err)
			}
		}
	}
}

// CPU per object is each phase's CPU over its objects, in milliseconds,
// and 0 for a phase not measured (-create-only).
func TestCPUPerObject(t *testing.T) {
	ps := []phaseResult{
		{perObject: 1000, ops: counters{opCPU: 2 * time.Second, cpCPU: 10 * time.Second}},
		{perObject: 500, ops: counters{opCPU: 1500 * time.Millisecond, cpCPU: 7 * time.Second}},
	}
	got := cpuOf(ps)
	want := cpuPerObject{Mirror: phases3{2, 3, 0}, ControlPlane: phases3{10, 14, 0}}
	if got != want {
		t.Errorf("cpuOf = %+v, want %+v", got, want)
	}
}

// What the ideal writes with -ideal-schema chartkind-status must be what
// chartkind's status schema keeps as it is: a field it pruned would make
// the ideal's writes smaller than chartkind's, and a field it refused would
// stop the run.
func TestShownStatusFitsChartkindSchema(t *testing.T) {
	c, err := idealCRD(0, schemaChartkindStatus)
	if err != nil {
		t.Fatal(err)
	}
	// Without the subresource, the checker checks the status as well.
	c.Spec.Versions[0].Subresources = nil
	chk, err := crd.NewChecker(c, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	for _, phase := range []string{"create", "ready", "update"} {
		status := shownStatus(phase, idealRelease(0, "o1"), 2, now)
		res := chk.Check(map[string]any{"metadata": map[string]any{"name": "o1", "namespace": idealNS},
			"spec": map[string]any{"replicas": int64(1), "size": "1Gi", "mode": "a"}, "status": status})
		if !res.Clean() {
			t.Errorf("%s: chartkind's schema would change or refuse the status: pruned %v, nulls %v, invalid %v", phase, res.Pruned, res.NullsDropped, res.Invalid)
		}
		if n := len(status["conditions"].([]any)); phase != "create" && n != 3 {
			t.Errorf("%s: %d conditions, want chartkind's 3 (Ready, Released, Healthy)", phase, n)
		}
	}
}

func TestIdealSchemas(t *testing.T) {
	for flag, want := range map[string][]string{
		"free": {"free"}, "both": {"free", "chartkind"}, "all": {"free", "chartkind", "chartkind-status"},
		"free,chartkind-status": {"free", "chartkind-status"}, "chartkind-status": {"chartkind-status"},
	} {
		got, err := idealSchemas(flag)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("idealSchemas(%q) = %v, %v; want %v", flag, got, err, want)
		}
	}
	for _, flag := range []string{"", "none", "free,free", "chartkind,free", "free,"} {
		if got, err := idealSchemas(flag); err == nil {
			t.Errorf("idealSchemas(%q) = %v, want an error", flag, got)
		}
	}
}
