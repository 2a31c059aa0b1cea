package definition

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/generate"
	"github.com/chartkind/chartkind/internal/schemachange"
)

// ReasonIncompatibleSchemaChange: the new schema would make existing objects
// invalid or drop some of their fields; the previous CRD stays.
const ReasonIncompatibleSchemaChange = "IncompatibleSchemaChange"

// listPageSize bounds one page of objects read for a schema change check.
const listPageSize = 500

// checkSchemaChange refuses a CRD whose schema would break existing objects:
// when the served CRD's schema differs from the new one, every object of the
// kind is checked against the new schema as the API server would check it
// (validation, and what pruning would silently drop). If any object would be
// invalid or lose data, nothing is applied and the condition names the
// objects and fields, unless spec.acceptSchemaChange names this schema.
// Breaking changes that affect no object are applied, with an event.
func (r *Reconciler) checkSchemaChange(ctx context.Context, def *v1alpha1.ApplicationDefinition, res *generate.Result, src resolved) *stepError {
	old := &apiextensionsv1.CustomResourceDefinition{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Name: res.CRD.Name}, old)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return &stepError{reason: ReasonProgressing, message: "reading CRD " + res.CRD.Name + ": " + err.Error(), transient: true}
	}
	if old.Labels[crd.ManagedByLabel] != crd.ManagedByValue || old.Labels[crd.DefinitionLabel] != def.Name || len(old.Spec.Versions) == 0 {
		return nil // checkConflicts has refused it already
	}
	version := res.CRD.Spec.Versions[0].Name
	oldVersion := old.Spec.Versions[0].Name
	oldSpec, err1 := schemachange.SpecSchema(old, oldVersion)
	newSpec, err2 := schemachange.SpecSchema(res.CRD, version)
	if err1 != nil || err2 != nil {
		return nil
	}
	// The root rules (crd.NameRules: the object's name must fit its release
	// name) are compared too: adding them to a CRD created before they
	// existed checks every existing object's name.
	rootChanges := schemachange.ClassifyRoot(old, res.CRD, oldVersion, version)
	if equality.Semantic.DeepEqual(oldSpec, newSpec) && oldVersion == version && len(rootChanges) == 0 {
		return nil
	}
	breaking := schemachange.Breaking(append(schemachange.Classify(oldSpec, newSpec), rootChanges...))

	checker, err := schemachange.NewChecker(res.CRD, version)
	if err != nil {
		return fail(ReasonSchemaInvalid, "checking existing objects against the new schema: %v", err)
	}
	var problems []schemachange.ObjectProblem
	objects := 0
	gvk := schema.GroupVersionKind{Group: old.Spec.Group, Version: oldVersion, Kind: old.Spec.Names.ListKind}
	if gvk.Kind == "" {
		gvk.Kind = old.Spec.Names.Kind + "List"
	}
	cont := ""
	for {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk)
		if err := r.APIReader.List(ctx, list, client.Limit(listPageSize), client.Continue(cont)); err != nil {
			return &stepError{reason: ReasonProgressing, message: fmt.Sprintf("listing %s to check them against the new schema: %v", old.Spec.Names.Plural, err), transient: true}
		}
		for i := range list.Items {
			objects++
			if p := checker.Check(&list.Items[i]); p != nil {
				problems = append(problems, *p)
			}
		}
		cont = list.GetContinue()
		if cont == "" {
			break
		}
	}

	newVersion := src.chartVersion
	if newVersion == "" {
		newVersion = "(inline schema)"
	}
	if len(problems) == 0 {
		if len(breaking) > 0 {
			r.event(def, "Normal", "SchemaChanged", "Apply", "Applying the schema of chart version %s: %d breaking change(s) (%s) affect none of the %d existing objects",
				newVersion, len(breaking), breaking[0], objects)
		}
		return nil
	}
	if def.Spec.AcceptSchemaChange == res.SchemaDigest {
		r.event(def, "Warning", "SchemaChangeAccepted", "Apply", "Applying the schema of chart version %s as accepted by spec.acceptSchemaChange: %s",
			newVersion, schemachange.Summarize(problems, 5))
		return nil
	}
	var what []string
	for i, c := range breaking {
		if i == 3 {
			what = append(what, fmt.Sprintf("and %d more", len(breaking)-3))
			break
		}
		what = append(what, shorten(c.String(), 160))
	}
	msg := fmt.Sprintf("the schema of chart version %s is not applied: %s", newVersion, schemachange.Summarize(problems, 5))
	if len(what) > 0 {
		msg += "; breaking changes: " + strings.Join(what, "; ")
	}
	msg += fmt.Sprintf("; fix the objects, or set spec.acceptSchemaChange to %s to apply it anyway", res.SchemaDigest)
	return &stepError{reason: ReasonIncompatibleSchemaChange, message: msg, requeue: sourceRetry}
}

// shorten cuts s to at most n bytes, on a rune boundary, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
