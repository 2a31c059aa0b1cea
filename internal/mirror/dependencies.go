package mirror

import (
	"context"
	"sort"
	"strings"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/definition"
)

// Dependencies between releases. The administrator names HelmReleases every
// release of a kind depends on (spec.release.dependsOn); a user says that
// their object depends on other application objects of the same namespace
// with an annotation. Both end up in the HelmRelease's spec.dependsOn, where
// helm-controller waits for them; chartkind only explains the wait, and says
// what helm-controller cannot: that a dependency does not exist or that
// dependencies form a cycle (helm-controller would wait forever).
const (
	// AnnotationDependsOn on an application object lists the objects it
	// depends on, comma-separated: "name" (an object of the same kind) or
	// "Kind/name" (an object of another chartkind kind), all in the object's
	// namespace.
	AnnotationDependsOn = "apps.chartkind.io/depends-on"
	// AnnotationDependsOnForwarded on a HelmRelease says that chartkind set
	// its dependsOn (the administrator's or the object's), so removing the last
	// dependency clears it.
	AnnotationDependsOnForwarded = "apps.chartkind.io/depends-on-forwarded"

	// ConditionDependenciesReady says whether everything the release depends
	// on is Ready; present only when it depends on something.
	ConditionDependenciesReady = "DependenciesReady"

	ReasonDependenciesReady  = "DependenciesReady"
	ReasonDependencyNotReady = "DependencyNotReady"
	ReasonDependencyNotFound = "DependencyNotFound"
	ReasonDependencyCycle    = "DependencyCycle"
	ReasonInvalidDependency  = "InvalidDependency"

	// dependencyRecheck is how often an object whose dependencies are not all
	// Ready looks at them again (reads only; nothing is written while nothing
	// changed).
	dependencyRecheck = 15 * time.Second
	// maxDependencyWalk bounds the objects read to look for a cycle.
	maxDependencyWalk = 64
)

// dependencies is what resolveDependencies found for one object.
type dependencies struct {
	// user are the HelmReleases the object's annotation names.
	user []helmv2.DependencyReference
	// condition is DependenciesReady, nil when there is no dependency.
	condition *metav1.Condition
	// keep: the annotation could not be read, so the HelmRelease keeps the
	// dependencies it has rather than losing the valid ones with the typo.
	keep bool
}

// depNode is an application object taking part in dependencies.
type depNode struct {
	def  *v1alpha1.ApplicationDefinition
	name string
}

func (n depNode) label() string { return definition.Effective(n.def).Kind + " " + n.name }

// parseDependsOn splits the annotation into (kind, name) pairs; kind is empty
// for the object's own kind.
func parseDependsOn(v string) [][2]string {
	var out [][2]string
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, name, ok := strings.Cut(part, "/")
		if !ok {
			kind, name = "", part
		}
		out = append(out, [2]string{strings.TrimSpace(kind), strings.TrimSpace(name)})
	}
	return out
}

// resolveDependencies reads the object's dependencies: the HelmReleases to
// put in dependsOn and the DependenciesReady condition. It reads (the
// definitions and HelmReleases from the cache, application objects from the
// API server) and never writes.
func (m *Mirror) resolveDependencies(ctx context.Context, t *target, obj *unstructured.Unstructured) (*dependencies, error) {
	admin := t.def.Spec.Release.DependsOn
	refs := parseDependsOn(obj.GetAnnotations()[AnnotationDependsOn])
	if len(admin) == 0 && len(refs) == 0 {
		return &dependencies{}, nil
	}
	out := &dependencies{}
	fail := func(reason, msg string) (*dependencies, error) {
		out.condition = &metav1.Condition{Type: ConditionDependenciesReady, Status: metav1.ConditionFalse, Reason: reason, Message: truncateMessage(msg)}
		return out, nil
	}
	var defs []*v1alpha1.ApplicationDefinition
	if len(refs) > 0 {
		var list v1alpha1.ApplicationDefinitionList
		if err := m.client.List(ctx, &list); err != nil {
			return nil, errorf("listing ApplicationDefinitions to resolve %s: %w", AnnotationDependsOn, err)
		}
		for i := range list.Items {
			defs = append(defs, &list.Items[i])
		}
	}
	self := depNode{def: t.def, name: obj.GetName()}
	direct, problem := resolveRefs(self, refs, defs)
	if problem != "" {
		out.keep = true
		return fail(ReasonInvalidDependency, "annotation "+AnnotationDependsOn+": "+problem+"; the HelmRelease keeps the dependencies it has until it is fixed")
	}
	seen := map[string]bool{}
	for _, d := range direct {
		ref := helmv2.DependencyReference{Name: definition.Effective(d.def).ReleaseName(d.name)}
		if !seen[ref.Name] {
			seen[ref.Name] = true
			out.user = append(out.user, ref)
		}
	}

	// Missing objects and cycles: helm-controller would wait for ever.
	for _, d := range direct {
		if _, err := m.dependencyObject(ctx, t.key.Namespace, d); err != nil {
			if apierrors.IsNotFound(err) {
				return fail(ReasonDependencyNotFound, d.label()+" (annotation "+AnnotationDependsOn+") does not exist in namespace "+t.key.Namespace)
			}
			return nil, err
		}
	}
	if cycle, err := m.findCycle(ctx, t.key.Namespace, self, direct, defs); err != nil {
		return nil, err
	} else if len(cycle) > 0 {
		return fail(ReasonDependencyCycle, "dependencies form a cycle: "+strings.Join(cycle, " → ")+": no release of the cycle can be installed until one "+AnnotationDependsOn+" annotation is changed")
	}

	// Readiness, as helm-controller judges it: each HelmRelease Ready for its
	// current generation.
	var waiting []string
	check := func(ns, name, what, readyExpr string) (bool, error) {
		hr := &helmv2.HelmRelease{}
		// From the API server: a shard's HelmRelease cache holds only its
		// own shard's, and an administrator's dependency is in none.
		if err := m.live.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, hr); err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, errorf("reading dependency HelmRelease %s/%s: %w", ns, name, err)
		}
		if readyExpr != "" {
			return true, nil // helm-controller judges it by its CEL expression, not by Ready
		}
		if c := findCondition(hr.Status.Conditions, ConditionReady); c == nil || c.Status != metav1.ConditionTrue || hr.Status.ObservedGeneration != hr.Generation {
			waiting = append(waiting, what)
		}
		return true, nil
	}
	for _, d := range admin {
		ns := nsOr(d.Namespace, t.key.Namespace)
		found, err := check(ns, d.Name, "HelmRelease "+ns+"/"+d.Name, d.ReadyExpr)
		if err != nil {
			return nil, err
		}
		if !found {
			return fail(ReasonDependencyNotFound, "HelmRelease "+ns+"/"+d.Name+" (spec.release.dependsOn of ApplicationDefinition "+t.def.Name+") does not exist")
		}
	}
	for _, d := range direct {
		name := definition.Effective(d.def).ReleaseName(d.name)
		what := d.label() + " (HelmRelease " + name + ")"
		found, err := check(t.key.Namespace, name, what, "")
		if err != nil {
			return nil, err
		}
		if !found {
			waiting = append(waiting, what)
		}
	}
	if len(waiting) > 0 {
		return fail(ReasonDependencyNotReady, "waiting for "+strings.Join(waiting, ", ")+" to be Ready")
	}
	out.condition = &metav1.Condition{Type: ConditionDependenciesReady, Status: metav1.ConditionTrue, Reason: ReasonDependenciesReady, Message: "every dependency is Ready"}
	return out, nil
}

// resolveRefs maps annotation entries to objects; problem says what is wrong
// with an entry that names no kind served by a definition.
func resolveRefs(self depNode, refs [][2]string, defs []*v1alpha1.ApplicationDefinition) ([]depNode, string) {
	var out []depNode
	for _, r := range refs {
		kind, name := r[0], r[1]
		if name == "" {
			return nil, "an entry has no object name (want name or Kind/name)"
		}
		if kind == "" {
			out = append(out, depNode{def: self.def, name: name})
			continue
		}
		var match []*v1alpha1.ApplicationDefinition
		for _, d := range defs {
			n := definition.Effective(d)
			if strings.EqualFold(n.Kind, kind) || n.Singular == kind {
				match = append(match, d)
			}
		}
		switch len(match) {
		case 0:
			return nil, "no ApplicationDefinition serves kind " + kind + " (entry " + kind + "/" + name + ")"
		case 1:
			out = append(out, depNode{def: match[0], name: name})
		default:
			names := make([]string, 0, len(match))
			for _, d := range match {
				names = append(names, d.Name)
			}
			sort.Strings(names)
			return nil, "kind " + kind + " is served by several ApplicationDefinitions (" + strings.Join(names, ", ") + ")"
		}
	}
	return out, ""
}

func (m *Mirror) dependencyObject(ctx context.Context, ns string, d depNode) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(GVK(d.def))
	if err := m.live.Get(ctx, types.NamespacedName{Namespace: ns, Name: d.name}, u); err != nil {
		return nil, err
	}
	return u, nil
}

// findCycle walks the dependencies from self and returns a path back to
// self, if any. Entries that resolve to nothing are left to their own
// object's condition.
func (m *Mirror) findCycle(ctx context.Context, ns string, self depNode, direct []depNode, defs []*v1alpha1.ApplicationDefinition) ([]string, error) {
	key := func(n depNode) string { return n.def.Name + "/" + n.name }
	type step struct {
		node depNode
		path []string
	}
	queue := make([]step, 0, len(direct))
	for _, d := range direct {
		queue = append(queue, step{d, []string{self.label(), d.label()}})
	}
	visited := map[string]bool{}
	for len(queue) > 0 && len(visited) < maxDependencyWalk {
		s := queue[0]
		queue = queue[1:]
		if key(s.node) == key(self) {
			return s.path, nil
		}
		if visited[key(s.node)] {
			continue
		}
		visited[key(s.node)] = true
		u, err := m.dependencyObject(ctx, ns, s.node)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, errorf("reading dependency %s: %w", s.node.label(), err)
		}
		next, _ := resolveRefs(s.node, parseDependsOn(u.GetAnnotations()[AnnotationDependsOn]), defs)
		for _, n := range next {
			queue = append(queue, step{n, append(append([]string(nil), s.path...), n.label())})
		}
	}
	return nil, nil
}

// dependencyStatus puts the DependenciesReady condition on st, and makes
// Ready say why the release cannot proceed when helm-controller cannot know.
// old is the status before this sync: Ready keeps its transition time when
// it was False already (the HelmRelease's Ready, set on st first, may be True).
func dependencyStatus(deps *dependencies, st, old *objectStatus) {
	if deps == nil || deps.condition == nil {
		st.removeCondition(ConditionDependenciesReady)
		return
	}
	st.setCondition(*deps.condition)
	switch deps.condition.Reason {
	case ReasonDependencyNotFound, ReasonDependencyCycle, ReasonInvalidDependency:
		c := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: deps.condition.Reason, Message: deps.condition.Message}
		if oc := findCondition(old.Conditions, ConditionReady); oc != nil && oc.Status == metav1.ConditionFalse {
			c.LastTransitionTime = oc.LastTransitionTime
		}
		st.setCondition(c)
	}
}

// dependencyRecheckAfter combines the status recheck with the dependencies'.
func dependencyRecheckAfter(deps *dependencies, after time.Duration) time.Duration {
	if deps == nil || deps.condition == nil || deps.condition.Status == metav1.ConditionTrue {
		return after
	}
	if after == 0 || after > dependencyRecheck {
		return dependencyRecheck
	}
	return after
}

// dependsOn is the HelmRelease's dependsOn: the administrator's, then the
// object's, without repeats. owned says whether it is set even when empty:
// chartkind forwarded dependencies (the administrator's or the object's)
// before (see AnnotationDependsOnForwarded), so removing the last one
// reaches the HelmRelease.
func dependsOn(admin []helmv2.DependencyReference, deps *dependencies, hr *helmv2.HelmRelease) ([]helmv2.DependencyReference, bool) {
	if deps != nil && deps.keep {
		return append([]helmv2.DependencyReference(nil), hr.Spec.DependsOn...), true
	}
	var out []helmv2.DependencyReference
	seen := map[string]bool{}
	add := func(d helmv2.DependencyReference) {
		k := d.Namespace + "/" + d.Name
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	for _, d := range admin {
		add(d)
	}
	if deps != nil {
		for _, d := range deps.user {
			add(d)
		}
	}
	return out, len(out) > 0 || hr.Annotations[AnnotationDependsOnForwarded] == "true"
}

func copyInt(p *int) *int {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
