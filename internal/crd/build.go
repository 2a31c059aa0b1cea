// Package crd builds the CustomResourceDefinition that serves one
// ApplicationDefinition's kind, and validates it offline with the API server's
// own validation code so that a CRD leaving this package is one the API server
// accepts.
package crd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/definition"
)

// Version is the served and stored version of every generated kind.
const Version = "v1alpha1"

// Labels and annotations that mark a CRD as chartkind's. chartkind only ever
// updates CRDs that carry ManagedByLabel=ManagedByValue and DefinitionLabel
// naming the definition that claims them.
const (
	ManagedByLabel         = "app.kubernetes.io/managed-by"
	ManagedByValue         = "chartkind"
	DefinitionLabel        = "chartkind.io/definition"
	SchemaDigestAnnotation = "chartkind.io/schema-digest"
	ChartVersionAnnotation = "chartkind.io/chart-version"
	ChartNameAnnotation    = "chartkind.io/chart"
)

// Input is everything a CRD is built from.
type Input struct {
	// Definition is the ApplicationDefinition; only its names, printer columns
	// and name are read.
	Definition *v1alpha1.ApplicationDefinition
	// Spec is the structural schema of the kind's spec (the chart's values).
	Spec *apiextensionsv1.JSONSchemaProps
	// ChartName and ChartVersion say which chart the schema came from; empty
	// when the definition's inline schema was used.
	ChartName    string
	ChartVersion string
	// SchemaDigest identifies the source schema, e.g. "sha256:…".
	SchemaDigest string
}

// Build returns the validated CRD for in, or an error naming the schema path
// the API server would reject. It never returns a partial CRD.
func Build(in Input) (*apiextensionsv1.CustomResourceDefinition, error) {
	if in.Definition == nil || in.Spec == nil {
		return nil, errors.New("building CRD: definition and spec schema are required")
	}
	names := definition.Effective(in.Definition)
	spec := in.Spec.DeepCopy()
	if spec.Description == "" {
		spec.Description = fmt.Sprintf("Values of the %s Helm release; every field is passed to the chart as a value.", names.Kind)
	}

	annotations := map[string]string{}
	if in.SchemaDigest != "" {
		annotations[SchemaDigestAnnotation] = in.SchemaDigest
	}
	if in.ChartName != "" {
		annotations[ChartNameAnnotation] = in.ChartName
	}
	if in.ChartVersion != "" {
		annotations[ChartVersionAnnotation] = in.ChartVersion
	}

	crd := &apiextensionsv1.CustomResourceDefinition{
		TypeMeta: metav1.TypeMeta{APIVersion: apiextensionsv1.SchemeGroupVersion.String(), Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{
			Name: names.CRDName(),
			Labels: map[string]string{
				ManagedByLabel:  ManagedByValue,
				DefinitionLabel: in.Definition.Name,
			},
			Annotations: annotations,
		},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: names.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Kind:       names.Kind,
				ListKind:   names.Kind + "List",
				Plural:     names.Plural,
				Singular:   names.Singular,
				ShortNames: names.ShortNames,
				Categories: names.Categories,
			},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name:    Version,
				Served:  true,
				Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type:        "object",
					Description: fmt.Sprintf("%s is an application: its spec holds the values of a Helm release that chartkind keeps in step with a Flux HelmRelease.", names.Kind),
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"apiVersion": {Type: "string", Description: "APIVersion defines the versioned schema of this representation of an object."},
						"kind":       {Type: "string", Description: "Kind is a string value representing the REST resource this object represents."},
						// name is declared so that the name rules can point at it
						// (fieldPath); the root may declare metadata's name and
						// generateName, nothing else.
						"metadata": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"name": {Type: "string"}}},
						"spec":     *spec,
						"status":   StatusSchema(),
					},
					XValidations: NameRules(names),
				}},
				Subresources:             &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				AdditionalPrinterColumns: printerColumns(in.Definition.Spec.Application.PrinterColumns),
			}},
			Conversion: &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter},
		},
	}
	if err := Validate(crd); err != nil {
		return nil, err
	}
	return crd, nil
}

// NameRules are the CEL rules, at the root of the schema, that make the API
// server refuse at create time (with no webhook involved) an object whose name
// its Helm release could not take: the release name is the prefix plus the
// object name, at most 53 characters (Helm's limit), and must not contain a
// dot. Object names are already DNS-1123 subdomains, so with a valid prefix
// that is all that is left: Helm accepts dots in release names, but charts
// name their Services (DNS-1035 labels, no dots) and most other objects after
// the release, so a dotted release name fails at install, after the object
// was accepted.
//
// Names are immutable, so the rules matter on create only: with
// optionalOldSelf they pass on every update, and objects created before the
// rules existed (which the mirror refuses with NameTooLong) can still be
// updated and have their status written.
func NameRules(n definition.Names) apiextensionsv1.ValidationRules {
	max := n.MaxObjectNameLength()
	return apiextensionsv1.ValidationRules{
		{
			Rule:            fmt.Sprintf("oldSelf.hasValue() || !has(self.metadata.name) || size(self.metadata.name) <= %d", max),
			OptionalOldSelf: ptr.To(true),
			Message:         tooLongMessage(n, max),
			Reason:          ptr.To(apiextensionsv1.FieldValueInvalid),
			FieldPath:       ".metadata.name",
		},
		{
			Rule:            "oldSelf.hasValue() || !has(self.metadata.name) || !self.metadata.name.contains('.')",
			OptionalOldSelf: ptr.To(true),
			Message: fmt.Sprintf("%s names may not contain dots: the Helm release name is %q + the name, and charts name Services (whose names may not contain dots) and other objects after it",
				n.Kind, n.Prefix),
			Reason:    ptr.To(apiextensionsv1.FieldValueInvalid),
			FieldPath: ".metadata.name",
		},
	}
}

func tooLongMessage(n definition.Names, max int) string {
	if max < 1 {
		return fmt.Sprintf("no %s name fits: the Helm release name is %q + the name, at most %d characters, and the prefix leaves no room; set a shorter spec.release.prefix on the ApplicationDefinition",
			n.Kind, n.Prefix, definition.MaxReleaseNameLength)
	}
	return fmt.Sprintf("%s names may have at most %d characters: the Helm release name is %q + the name, at most %d",
		n.Kind, max, n.Prefix, definition.MaxReleaseNameLength)
}

// printerColumns puts NAME READY AGE VERSION first (NAME is implicit), then the
// definition's own columns.
func printerColumns(extra []apiextensionsv1.CustomResourceColumnDefinition) []apiextensionsv1.CustomResourceColumnDefinition {
	cols := []apiextensionsv1.CustomResourceColumnDefinition{
		{Name: "Ready", Type: "string", JSONPath: `.status.conditions[?(@.type=="Ready")].status`},
		{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
		{Name: "Version", Type: "string", JSONPath: ".status.version"},
		{Name: "Reason", Type: "string", JSONPath: `.status.conditions[?(@.type=="Ready")].reason`, Priority: 1},
		{Name: "Healthy", Type: "string", JSONPath: `.status.conditions[?(@.type=="Healthy")].status`, Priority: 1},
		{Name: "Endpoint", Type: "string", JSONPath: ".status.endpoint", Priority: 1},
		{Name: "Message", Type: "string", JSONPath: `.status.conditions[?(@.type=="Ready")].message`, Priority: 1},
	}
	return append(cols, extra...)
}

// Validate runs the API server's CRD validation offline. Its error lists every
// field the API server would reject, each with its path in the CRD.
func Validate(crd *apiextensionsv1.CustomResourceDefinition) error {
	v1 := crd.DeepCopy()
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(v1)
	var internal apiextensionsinternal.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(v1, &internal, nil); err != nil {
		return fmt.Errorf("CRD %s: converting for validation: %w", crd.Name, err)
	}
	errs := validation.ValidateCustomResourceDefinition(context.Background(), &internal)
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return &InvalidError{CRD: crd.Name, Problems: msgs}
}

// InvalidError is a CRD the API server would refuse.
type InvalidError struct {
	CRD      string
	Problems []string
}

func (e *InvalidError) Error() string {
	const maxShown = 10
	shown := e.Problems
	more := ""
	if len(shown) > maxShown {
		more = fmt.Sprintf(" (and %d more)", len(shown)-maxShown)
		shown = shown[:maxShown]
	}
	return fmt.Sprintf("CRD %s is invalid: %s%s", e.CRD, strings.Join(shown, "; "), more)
}

// StatusSchema is the schema of every application object's status: what
// chartkind reflects back from the HelmRelease.
func StatusSchema() apiextensionsv1.JSONSchemaProps {
	str := func(desc string) apiextensionsv1.JSONSchemaProps {
		return apiextensionsv1.JSONSchemaProps{Type: "string", Description: desc}
	}
	i64 := func(desc string) apiextensionsv1.JSONSchemaProps {
		return apiextensionsv1.JSONSchemaProps{Type: "integer", Format: "int64", Description: desc}
	}
	condition := apiextensionsv1.JSONSchemaProps{
		Type:     "object",
		Required: []string{"type", "status", "lastTransitionTime", "reason", "message"},
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"type":               {Type: "string", MaxLength: ptr.To[int64](316), Description: "Type of condition: Ready, Healthy, Released, Reconciling, Stalled, Suspended."},
			"status":             {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"True"`)}, {Raw: []byte(`"False"`)}, {Raw: []byte(`"Unknown"`)}}},
			"observedGeneration": {Type: "integer", Format: "int64", Minimum: ptr.To[float64](0)},
			"lastTransitionTime": {Type: "string", Format: "date-time"},
			"reason":             {Type: "string", MaxLength: ptr.To[int64](1024)},
			"message":            {Type: "string", MaxLength: ptr.To[int64](32768)},
		},
	}
	strs := func(desc string) apiextensionsv1.JSONSchemaProps {
		return apiextensionsv1.JSONSchemaProps{Type: "array", Description: desc,
			Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}}
	}
	list := func(desc string, item apiextensionsv1.JSONSchemaProps) apiextensionsv1.JSONSchemaProps {
		item.Type = "object"
		return apiextensionsv1.JSONSchemaProps{Type: "array", Description: desc, XListType: ptr.To("atomic"),
			Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &item}}
	}
	port := apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"name":       str("Name of the port."),
			"port":       {Type: "integer", Format: "int32", Description: "Port of the Service."},
			"protocol":   str("TCP, UDP or SCTP."),
			"targetPort": str("Port of the pods the Service sends to."),
			"nodePort":   {Type: "integer", Format: "int32", Description: "Port on every node, for NodePort and LoadBalancer Services."},
		},
	}
	access := apiextensionsv1.JSONSchemaProps{
		Type:        "object",
		Description: "How to reach what the release installed, from its inventory: Services, Ingresses, Secrets (key names only) and the release notes. The definition's spec.access selects what is shown.",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"services": list("Services of the release.", apiextensionsv1.JSONSchemaProps{Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"name":      str("Name of the Service."),
				"type":      str("ClusterIP, NodePort, LoadBalancer or ExternalName."),
				"clusterIP": str("Cluster IP; None for a headless Service."),
				"dns":       str("DNS name inside the cluster."),
				"ports":     {Type: "array", Description: "Ports of the Service.", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &port}},
				"external":  strs("External addresses: load balancer IPs or host names and external IPs."),
			}}),
			"ingresses": list("Ingresses of the release.", apiextensionsv1.JSONSchemaProps{Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"name":  str("Name of the Ingress."),
				"class": str("Ingress class."),
				"urls":  strs("URLs the Ingress serves."),
			}}),
			"secrets": list("Secrets of the release, with the names of their keys (never their values).", apiextensionsv1.JSONSchemaProps{Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"name": str("Name of the Secret."),
				"keys": strs("Names of the Secret's keys."),
			}}),
			"notes":   str("Release notes Helm rendered from the chart's NOTES.txt (bounded in size)."),
			"omitted": strs("What could not be read (for example a Secret chartkind may not read), so that a missing entry is not mistaken for none."),
		},
	}
	return apiextensionsv1.JSONSchemaProps{
		Type:        "object",
		Description: "Status of the application, reflected from its HelmRelease and what it installed.",
		// Present from creation on, before chartkind writes any status, so that
		// tools that wait (kstatus: Flux, kubectl wait, CI) read a new object as
		// InProgress: observedGeneration 0 differs from every generation.
		Default: &apiextensionsv1.JSON{Raw: []byte(`{"observedGeneration":0}`)},
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"observedGeneration": {Type: "integer", Format: "int64", Default: &apiextensionsv1.JSON{Raw: []byte(`0`)},
				Description: "The generation whose values the HelmRelease has processed; 0 until it has processed one."},
			"lastHandledReconcileAt": str("The last reconcile request (reconcile.fluxcd.io/requestedAt) helm-controller handled."),
			"endpoint":               str("Where to connect, in one line: the first external address or Ingress URL, else the first Service's cluster DNS name and port."),
			"access":                 access,
			"conditions": {
				Type:         "array",
				Description:  "Ready: Helm's last action on the release succeeded (from the HelmRelease). Healthy: the objects it installed are healthy. Released, Reconciling, Stalled: from the HelmRelease. Suspended: the release is suspended.",
				Items:        &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &condition},
				XListType:    ptr.To("map"),
				XListMapKeys: []string{"type"},
			},
			"version":         str("The deployed chart version."),
			"appVersion":      str("The deployed application version, from the chart."),
			"failures":        i64("Failed reconciliations of the release since the last success."),
			"installFailures": i64("Failed install attempts."),
			"upgradeFailures": i64("Failed upgrade attempts."),
			"valuesDigest":    str("Digest of the values last synchronised between the object and its HelmRelease."),
			"release": {
				Type:        "object",
				Description: "The HelmRelease that backs this object.",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"name":      str("Name of the HelmRelease."),
					"namespace": str("Namespace of the HelmRelease."),
				},
			},
		},
	}
}
