package schemachange

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/chartkind/chartkind/internal/crd"
)

// Checker says what the API server would do with existing objects under one
// version of a CRD: a crd.Checker, whose results it reports for the spec only.
// Build one per new CRD and reuse it for every object. A Checker is safe for
// concurrent use.
type Checker struct {
	crd *crd.Checker
}

// NewChecker prepares the checks for the named version of newCRD, which
// should be one that crd.Build produced or the API server accepted.
func NewChecker(newCRD *apiextensionsv1.CustomResourceDefinition, version string) (*Checker, error) {
	c, err := crd.NewChecker(newCRD, version)
	if err != nil {
		return nil, err
	}
	return &Checker{crd: c}, nil
}

// ObjectProblem is what would happen to one existing object under the new
// schema. Only its spec is considered: status is chartkind's own, and metadata
// is not governed by the schema.
type ObjectProblem struct {
	Namespace, Name string
	// Pruned are the spec fields the API server would drop because the schema
	// no longer knows them (paths like spec.a.b[0].c, sorted). They disappear
	// from every read at once and from storage at the next write of the object.
	Pruned []string
	// NullsDropped are spec fields holding null that the API server would drop
	// because they are no longer nullable, or replace by the default of the
	// field. In Helm a null removes a chart default, so this changes the
	// release too.
	NullsDropped []string
	// Invalid are the validation errors the object would have, as the API
	// server reports them when the object is created: OpenAPI schema validation
	// (types, enums, patterns, bounds, required, nullable) and CEL rules;
	// sorted by field, pathless errors last.
	Invalid field.ErrorList
}

// Object names the object: namespace/name, or name for cluster-scoped kinds.
func (p ObjectProblem) Object() string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// issues lists the problems one by one, in order: pruned, dropped nulls, invalid.
func (p ObjectProblem) issues() []string {
	out := make([]string, 0, len(p.Pruned)+len(p.NullsDropped)+len(p.Invalid))
	for _, f := range p.Pruned {
		out = append(out, f+": would be pruned")
	}
	for _, f := range p.NullsDropped {
		out = append(out, f+": null would be dropped")
	}
	for _, e := range p.Invalid {
		if e.Field == "" || e.Field == "<nil>" {
			// A pathless error (kube-openapi's second error for a wrong number
			// type, the API server's "rules not checked"): its detail says it all.
			out = append(out, e.Detail)
			continue
		}
		out = append(out, e.Error())
	}
	return out
}

func (p ObjectProblem) String() string {
	return p.Object() + ": " + strings.Join(p.issues(), "; ")
}

// Check runs every object through a Checker for the named version of newCRD and
// returns the objects that would lose data or become invalid, sorted by
// namespace and name. An error means the CRD itself could not be prepared.
func Check(newCRD *apiextensionsv1.CustomResourceDefinition, version string, objects []*unstructured.Unstructured) ([]ObjectProblem, error) {
	c, err := NewChecker(newCRD, version)
	if err != nil {
		return nil, err
	}
	var out []ObjectProblem
	for _, obj := range objects {
		if p := c.Check(obj); p != nil {
			out = append(out, *p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Check returns what would happen to obj under the checker's schema, or nil
// when the object would keep all its spec and stay valid. obj is not modified.
//
// obj should be the object as the API server serves it under the current CRD
// (e.g. from a List): that is the object as stored, seen through the current
// schema, including fields the current schema preserves
// (x-kubernetes-preserve-unknown-fields) that the new one might prune.
//
// Only the spec is looked at (see crd.Checker.Check for the steps): a read
// under the new schema, then validation as on create.
func (c *Checker) Check(obj *unstructured.Unstructured) *ObjectProblem {
	r := c.check(obj)
	if r.Clean() {
		return nil
	}
	return &ObjectProblem{Namespace: obj.GetNamespace(), Name: obj.GetName(), Pruned: r.Pruned, NullsDropped: r.NullsDropped, Invalid: r.Invalid}
}

// check runs the crd.Checker on obj's spec alone; tests compare the spec it
// predicts with what a real API server serves.
func (c *Checker) check(obj *unstructured.Unstructured) crd.Result {
	view := map[string]any{"metadata": obj.Object["metadata"]}
	if spec, ok := obj.Object["spec"]; ok {
		view["spec"] = spec
	}
	return c.crd.Check(view)
}

// Summarize says in one message, under about 1 KB (a Kubernetes condition
// message, an event), which objects would lose data or become invalid: the
// first maxObjects objects with their first problems, then how many more.
//
//	3 objects would lose data or become invalid: ns/db1 (spec.foo: would be pruned), ns/db2 (spec.replicas: Invalid value: "3": …), and 1 more
func Summarize(problems []ObjectProblem, maxObjects int) string {
	if len(problems) == 0 {
		return ""
	}
	const (
		budget          = 1024
		issuesPerObject = 2
		issueLen        = 200
	)
	var lose, invalid bool
	for _, p := range problems {
		lose = lose || len(p.Pruned) > 0 || len(p.NullsDropped) > 0
		invalid = invalid || len(p.Invalid) > 0
	}
	what := "lose data or become invalid"
	switch {
	case !invalid:
		what = "lose data"
	case !lose:
		what = "become invalid"
	}
	noun := "objects"
	if len(problems) == 1 {
		noun = "object"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s would %s: ", len(problems), noun, what)

	shown := 0
	for _, p := range problems {
		if shown >= maxObjects {
			break
		}
		issues := p.issues()
		for i := range issues {
			issues[i] = truncate(issues[i], issueLen)
		}
		if len(issues) > issuesPerObject {
			issues = append(issues[:issuesPerObject], fmt.Sprintf("%d more", len(issues)-issuesPerObject))
		}
		part := p.Object() + " (" + strings.Join(issues, "; ") + ")"
		if shown > 0 {
			part = ", " + part
		}
		// Keep room for ", and N more".
		if b.Len()+len(part)+len(", and 100000 more") > budget {
			if shown > 0 {
				break
			}
			part = truncate(part, budget-b.Len()-len(", and 100000 more"))
		}
		b.WriteString(part)
		shown++
	}
	if rest := len(problems) - shown; rest > 0 {
		if shown > 0 {
			b.WriteString(", and ")
		}
		fmt.Fprintf(&b, "%d more", rest)
	}
	return b.String()
}

// truncate shortens s to at most n bytes, on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
