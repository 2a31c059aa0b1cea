package schemaconv

import (
	"context"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"unicode/utf8"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apivalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
)

// setDefault copies the schema default into the node (Options.Defaults)
// when the API server would accept it: it validates against the converted
// node and nothing of it would be pruned. A default is never combined with
// CEL rules (e.g. the enum of a nullable field), which are not evaluated here.
func (c *converter) setDefault(n *node, loc string, out *apiextensionsv1.JSONSchemaProps) {
	if !c.opts.Defaults {
		return
	}
	for _, s := range n.schemas {
		if s.Default == nil {
			continue
		}
		def := *s.Default
		if def == nil {
			return // a null default only restates "unset"
		}
		switch ok, why := c.accepts(out, def); {
		case !ok && why != "":
			c.warn(pointerOf(s.Location), "default %s not copied: %s", compactJSON(def, 60), why)
			return
		case !ok:
			c.warn(pointerOf(s.Location), "default %s contradicts the schema; not copied", compactJSON(def, 60))
			return
		}
		out.Default = &apiextensionsv1.JSON{Raw: rawJSON(def)}
		return
	}
}

// accepts is a small validator of v against a converted node, strict where
// it is unsure (it is only used to decide whether a default is safe). why
// explains a refusal that is not a contradiction.
func (c *converter) accepts(p *apiextensionsv1.JSONSchemaProps, v any) (ok bool, why string) {
	if v == nil {
		return p.Nullable, ""
	}
	if len(p.XValidations) > 0 {
		for _, r := range p.XValidations {
			enum, mine := c.celEnums[r.Rule]
			if !mine {
				return false, "CEL rules of the chart apply, they are not evaluated here"
			}
			found := false
			for _, e := range enum {
				if canon(e) == canon(v) {
					found = true
				}
			}
			if !found {
				return false, ""
			}
		}
	}
	return c.acceptsValue(p, v)
}

func (c *converter) acceptsValue(p *apiextensionsv1.JSONSchemaProps, v any) (bool, string) {
	no := func() (bool, string) { return false, "" }
	k := kindOf(v)
	switch {
	case p.XIntOrString:
		if k != tStr && k != tInt {
			return no()
		}
	case p.Type == "":
	case p.Type == "object" && k != tObj, p.Type == "array" && k != tArr,
		p.Type == "string" && k != tStr, p.Type == "boolean" && k != tBool,
		p.Type == "number" && k&tNumber == 0:
		return no()
	case p.Type == "integer":
		if k != tInt || strings.ContainsAny(fmt.Sprint(v), ".eE") {
			return no()
		}
	}
	if len(p.Enum) > 0 {
		found := false
		for _, e := range p.Enum {
			if canonRaw(e.Raw) == canon(v) {
				found = true
			}
		}
		if !found {
			return no()
		}
	}
	switch v := v.(type) {
	case string:
		l := int64(utf8.RuneCountInString(v))
		if (p.MinLength != nil && l < *p.MinLength) || (p.MaxLength != nil && l > *p.MaxLength) {
			return no()
		}
		if p.Pattern != "" {
			re, err := regexp.Compile(p.Pattern)
			if err != nil || !re.MatchString(v) {
				return no()
			}
		}
		if p.Format != "" && !strfmt.Default.Validates(p.Format, v) {
			return no()
		}
	case []any:
		l := int64(len(v))
		if (p.MinItems != nil && l < *p.MinItems) || (p.MaxItems != nil && l > *p.MaxItems) {
			return no()
		}
		if p.XListType != nil && *p.XListType == "set" && hasDuplicates(v) {
			return no()
		}
		if p.Items != nil && p.Items.Schema != nil {
			for _, x := range v {
				if ok, why := c.accepts(p.Items.Schema, x); !ok {
					return false, why
				}
			}
		}
	case map[string]any:
		l := int64(len(v))
		if (p.MinProperties != nil && l < *p.MinProperties) || (p.MaxProperties != nil && l > *p.MaxProperties) {
			return no()
		}
		for _, r := range p.Required {
			if _, ok := v[r]; !ok {
				return no()
			}
		}
		for key, x := range v {
			if prop, ok := p.Properties[key]; ok {
				if ok, why := c.accepts(&prop, x); !ok {
					return false, why
				}
				continue
			}
			switch {
			case p.AdditionalProperties != nil && p.AdditionalProperties.Schema != nil:
				if ok, why := c.accepts(p.AdditionalProperties.Schema, x); !ok {
					return false, why
				}
			case p.XPreserveUnknownFields != nil && *p.XPreserveUnknownFields:
			default:
				return no() // would be pruned
			}
		}
	default:
		r, ok := numRat(v)
		if !ok {
			return k == tBool, ""
		}
		if p.Minimum != nil {
			m := new(big.Rat).SetFloat64(*p.Minimum)
			if c := r.Cmp(m); c < 0 || (c == 0 && p.ExclusiveMinimum) {
				return no()
			}
		}
		if p.Maximum != nil {
			m := new(big.Rat).SetFloat64(*p.Maximum)
			if c := r.Cmp(m); c > 0 || (c == 0 && p.ExclusiveMaximum) {
				return no()
			}
		}
		if p.MultipleOf != nil && !new(big.Rat).Quo(r, new(big.Rat).SetFloat64(*p.MultipleOf)).IsInt() {
			return no()
		}
	}
	return true, ""
}

func canonRaw(b []byte) string {
	v, err := parseSchemaJSON(b)
	if err != nil {
		return string(b)
	}
	return canon(v)
}

// selfCheck validates the result the way the API server validates a CRD.
// The converter is meant to always produce valid schemas; this is the safety
// net for inputs it does not foresee (e.g. chart-supplied CEL rules over the
// cost budget): first CEL rules are dropped, then the whole spec is opened.
func selfCheck(p *apiextensionsv1.JSONSchemaProps, warnings []string) (*apiextensionsv1.JSONSchemaProps, []string) {
	errs := validateAsCRD(p)
	if len(errs) == 0 {
		return p, warnings
	}
	q := p.DeepCopy()
	if stripRules(q) {
		if len(validateAsCRD(q)) == 0 {
			return q, append(warnings, "#: x-kubernetes-validations dropped, the CRD would be invalid with them: "+truncate(strings.Join(errs, "; "), 500))
		}
	}
	return &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptrTrue(), Description: p.Description},
		append(warnings, "#: converted schema would be an invalid CRD, accepting any spec: "+truncate(strings.Join(errs, "; "), 500))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func stripRules(p *apiextensionsv1.JSONSchemaProps) bool {
	found := len(p.XValidations) > 0
	p.XValidations = nil
	for k, v := range p.Properties {
		if stripRules(&v) {
			found = true
		}
		p.Properties[k] = v
	}
	if p.Items != nil && p.Items.Schema != nil && stripRules(p.Items.Schema) {
		found = true
	}
	if p.AdditionalProperties != nil && p.AdditionalProperties.Schema != nil && stripRules(p.AdditionalProperties.Schema) {
		found = true
	}
	return found
}

// SpecCRD wraps a spec schema into a minimal v1 CRD (group
// apps.chartkind.io, status subresource, a CEL rule at the root), as the
// validators see it.
func specCRD(spec *apiextensionsv1.JSONSchemaProps) *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "checks.apps.chartkind.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "apps.chartkind.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "checks", Singular: "check", Kind: "Check", ListKind: "CheckList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					// A rule at the root, as every generated CRD has (its name
					// rules): the API server then builds CEL type information
					// from the root, and a rule below a node it cannot type is
					// an invalid CRD.
					XValidations: apiextensionsv1.ValidationRules{{Rule: "true", Message: "root"}},
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec":   *spec,
						"status": {Type: "object", XPreserveUnknownFields: ptrTrue()},
					},
				}},
			}},
		},
		Status: apiextensionsv1.CustomResourceDefinitionStatus{StoredVersions: []string{"v1alpha1"}},
	}
}

func validateAsCRD(spec *apiextensionsv1.JSONSchemaProps) (errs []string) {
	defer func() {
		if r := recover(); r != nil {
			errs = append(errs, fmt.Sprintf("validator panic: %v", r))
		}
	}()
	var internal apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(specCRD(spec), &internal, nil); err != nil {
		return []string{err.Error()}
	}
	for _, e := range apivalidation.ValidateCustomResourceDefinition(context.Background(), &internal) {
		errs = append(errs, e.Error())
	}
	return errs
}
