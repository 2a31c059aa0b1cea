// Package v1alpha1 contains the chartkind.io/v1alpha1 API: the ApplicationDefinition
// an administrator writes to turn a Helm chart into a Kubernetes kind.
//
// The package holds types only; defaulting that cannot be expressed as a static
// OpenAPI default (names derived from the kind) lives in internal/definition.
//
// +kubebuilder:object:generate=true
// +groupName=chartkind.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "chartkind.io", Version: "v1alpha1"}

	// SchemeBuilder is used to add go types to the GroupVersionKind scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
