package v1alpha1

import (
	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultGroup is the API group of generated kinds when a definition names none.
const DefaultGroup = "apps.chartkind.io"

// ApplicationDefinitionSpec describes one chart-backed kind: its names, the chart
// that backs it and how its HelmReleases are made.
// +kubebuilder:validation:XValidation:rule="!has(self.application.shortNames) || !has(self.application.plural) || !(self.application.plural in self.application.shortNames)",message="spec.application.shortNames must not repeat spec.application.plural"
type ApplicationDefinitionSpec struct {
	// Application names the kind that users create.
	Application ApplicationNames `json:"application"`

	// Release says how each application object becomes a Flux HelmRelease. Every
	// field here belongs to the administrator: users choose values, nothing else.
	Release ReleaseSpec `json:"release"`

	// Schema, when set, is a JSON Schema (any draft from 04 to 2020-12) used instead
	// of the chart's values.schema.json.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	Schema *apiextensionsv1.JSON `json:"schema,omitempty"`

	// Defaults says what happens to the defaults of the chart's schema. Describe
	// (the default) shows them in field descriptions, so a later chart version can
	// still change them; Apply writes them into every object at creation, freezing them.
	// +kubebuilder:validation:Enum=Describe;Apply
	// +kubebuilder:default=Describe
	// +optional
	Defaults DefaultsPolicy `json:"defaults,omitempty"`

	// DeletionPolicy says what happens to the generated CustomResourceDefinition,
	// and so to every application object of the kind, when this definition is
	// deleted. Retain (the default) keeps both; only Delete removes them.
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// AcceptSchemaChange applies one breaking schema change deliberately. When
	// a new chart version (or a changed spec.schema) would make existing
	// objects invalid or make the API server drop some of their fields,
	// chartkind keeps serving the previous CRD and its Ready condition
	// (reason IncompatibleSchemaChange) names the objects and fields and the
	// schema digest of the refused schema. Setting this field to that digest
	// applies that schema, and only that one.
	// +kubebuilder:validation:Pattern=`^sha256:[0-9a-f]{64}$`
	// +optional
	AcceptSchemaChange string `json:"acceptSchemaChange,omitempty"`

	// Values are what the administrator decides in every release of the kind:
	// values that always win over the user's, and paths users may not set.
	// +optional
	Values *AdministratorValues `json:"values,omitempty"`

	// Access says what users see in their objects' status.access: how to
	// connect to what their release installed. By default every Service,
	// Ingress and Secret (key names only, never values) of the release and the
	// release notes rendered from the chart's NOTES.txt.
	// +optional
	Access *AccessSpec `json:"access,omitempty"`
}

// AccessSpec selects what of each release is shown to the object's users.
type AccessSpec struct {
	// Objects select the release's objects shown in status.access; an object is
	// shown when any rule matches it. Empty: every Service, Ingress and Secret
	// of the release.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Objects []AccessRule `json:"objects,omitempty"`

	// ReleaseNotes says whether status.access.notes shows the notes Helm
	// rendered from the chart's NOTES.txt (Show, the default) or not (Hide).
	// Notes are rendered from the values and may contain anything a template
	// prints: hide them for charts whose notes print secrets.
	// +kubebuilder:validation:Enum=Show;Hide
	// +kubebuilder:default=Show
	// +optional
	ReleaseNotes ReleaseNotesPolicy `json:"releaseNotes,omitempty"`
}

// ReleaseNotesPolicy says whether release notes are shown.
type ReleaseNotesPolicy string

const (
	// ReleaseNotesShow shows the rendered NOTES.txt in the object's status.
	ReleaseNotesShow ReleaseNotesPolicy = "Show"
	// ReleaseNotesHide never reads or shows them.
	ReleaseNotesHide ReleaseNotesPolicy = "Hide"
)

// AccessRule matches objects of one kind in a release's inventory.
// +kubebuilder:validation:XValidation:rule="!(has(self.name) && has(self.selector))",message="set at most one of name and selector"
type AccessRule struct {
	// Kind of the objects: Service, Ingress or Secret.
	// +kubebuilder:validation:Enum=Service;Ingress;Secret
	Kind string `json:"kind"`

	// Name, when set, matches only the object of that name.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Name string `json:"name,omitempty"`

	// Selector, when set, matches only objects with these labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// DefaultsPolicy says whether chart defaults are applied by the API server.
type DefaultsPolicy string

const (
	// DefaultsDescribe documents defaults in descriptions only.
	DefaultsDescribe DefaultsPolicy = "Describe"
	// DefaultsApply writes defaults into objects as the API server stores them.
	DefaultsApply DefaultsPolicy = "Apply"
)

// DeletionPolicy says what to do with the generated CRD when the definition goes.
type DeletionPolicy string

const (
	// DeletionRetain keeps the CRD and every application object.
	DeletionRetain DeletionPolicy = "Retain"
	// DeletionDelete deletes the CRD, and with it every application object.
	DeletionDelete DeletionPolicy = "Delete"
)

// ApplicationNames are the names of the generated kind. Plural and singular are
// derived from the kind when omitted (Postgres → postgreses, postgres). They
// cannot change once set: a renamed kind is a new kind, with its own CRD and
// objects, so it takes a new definition.
// +kubebuilder:validation:XValidation:rule="self.kind == oldSelf.kind",message="spec.application.kind is immutable: create a new ApplicationDefinition for a new kind"
// +kubebuilder:validation:XValidation:rule=`(has(self.group) ? self.group : "") == (has(oldSelf.group) ? oldSelf.group : "")`,message="spec.application.group is immutable"
// +kubebuilder:validation:XValidation:rule=`(has(self.plural) ? self.plural : "") == (has(oldSelf.plural) ? oldSelf.plural : "")`,message="spec.application.plural is immutable"
// +kubebuilder:validation:XValidation:rule=`(has(self.singular) ? self.singular : "") == (has(oldSelf.singular) ? oldSelf.singular : "")`,message="spec.application.singular is immutable"
type ApplicationNames struct {
	// Kind is the CamelCase kind, e.g. Postgres.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Z][A-Za-z0-9]*$`
	Kind string `json:"kind"`

	// Group is the API group of the kind.
	// +kubebuilder:default="apps.chartkind.io"
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$`
	// +optional
	Group string `json:"group,omitempty"`

	// Plural is the lowercase plural resource name; defaults to the kind, lowercased
	// and pluralised.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Plural string `json:"plural,omitempty"`

	// Singular is the lowercase singular name; defaults to the kind, lowercased.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Singular string `json:"singular,omitempty"`

	// ShortNames are short aliases for kubectl, e.g. pg.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	// +optional
	ShortNames []string `json:"shortNames,omitempty"`

	// Categories the kind belongs to. "apps" is always added, so `kubectl get apps`
	// lists every application.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	// +optional
	Categories []string `json:"categories,omitempty"`

	// PrinterColumns are extra columns for `kubectl get`, after NAME READY AGE VERSION.
	// JSONPaths usually point into .spec (the values) or .status.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	PrinterColumns []apiextensionsv1.CustomResourceColumnDefinition `json:"printerColumns,omitempty"`
}

// ReleaseSpec holds what the administrator sets on every HelmRelease of the kind.
// +kubebuilder:validation:XValidation:rule="has(self.chart) != has(self.chartRef)",message="exactly one of spec.release.chart and spec.release.chartRef must be set"
// +kubebuilder:validation:XValidation:rule=`(has(self.prefix) ? self.prefix : "") == (has(oldSelf.prefix) ? oldSelf.prefix : "")`,message="spec.release.prefix is immutable: every HelmRelease is named with it"
type ReleaseSpec struct {
	// Prefix is put before the object's name to make the HelmRelease and Helm
	// release name; defaults to the singular name and a dash ("postgres-"). Helm
	// release names are at most 53 characters, so the prefix is kept short.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*)?$`
	// +optional
	Prefix string `json:"prefix,omitempty"`

	// Labels are added to every HelmRelease of the kind.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// Chart is the chart in a Flux source, as a HelmRelease's spec.chart names it.
	// +optional
	Chart *ChartTemplate `json:"chart,omitempty"`

	// ChartRef names an OCIRepository or HelmChart that holds the chart, as a
	// HelmRelease's spec.chartRef does.
	// +optional
	ChartRef *helmv2.CrossNamespaceSourceReference `json:"chartRef,omitempty"`

	// Interval at which helm-controller reconciles each release.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`

	// Timeout for Helm actions of each release.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Install holds the Helm install settings, remediation included.
	// +optional
	Install *helmv2.Install `json:"install,omitempty"`

	// Upgrade holds the Helm upgrade settings, remediation included.
	// +optional
	Upgrade *helmv2.Upgrade `json:"upgrade,omitempty"`

	// ValuesFrom are values the administrator adds from ConfigMaps and Secrets in the
	// object's namespace, merged before the object's spec.
	// +optional
	ValuesFrom []helmv2.ValuesReference `json:"valuesFrom,omitempty"`

	// ServiceAccountName is the service account helm-controller impersonates.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// TargetNamespace, when set, is where every release of the kind installs.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	TargetNamespace string `json:"targetNamespace,omitempty"`

	// StorageNamespace is where Helm keeps each release's records (its
	// Secrets); defaults to the object's namespace. Changing it on existing
	// releases makes helm-controller look for them in the new namespace.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	StorageNamespace string `json:"storageNamespace,omitempty"`

	// MaxHistory is how many Helm revisions each release keeps; 0 keeps
	// them all, helm-controller's default is 5.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxHistory *int `json:"maxHistory,omitempty"`

	// DependsOn are HelmReleases (e.g. an operator's release) that must be
	// Ready before any release of the kind is installed or upgraded. A
	// reference without a namespace means the object's namespace. Users add
	// dependencies of their own with the apps.chartkind.io/depends-on
	// annotation; both are mirrored into the HelmRelease's dependsOn.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(d, size(d.name) > 0 && size(d.name) <= 253)",message="spec.release.dependsOn[].name must be a HelmRelease name of 1 to 253 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(d, !has(d.namespace) || size(d.namespace) <= 63)",message="spec.release.dependsOn[].namespace must be a namespace name of at most 63 characters"
	// +optional
	DependsOn []helmv2.DependencyReference `json:"dependsOn,omitempty"`

	// KubeConfig installs every release of the kind into another cluster:
	// the Secret (in the object's namespace) holds the kubeconfig
	// helm-controller uses. chartkind reads what a remote release installed
	// with the same kubeconfig, never with its own credentials.
	// +optional
	KubeConfig *meta.KubeConfigReference `json:"kubeConfig,omitempty"`

	// DriftDetection makes helm-controller compare each release's objects
	// with what Helm applied: mode enabled corrects drift by upgrading, warn
	// only reports it.
	// +optional
	DriftDetection *helmv2.DriftDetection `json:"driftDetection,omitempty"`

	// HealthCheckExprs are CEL expressions helm-controller evaluates, while
	// it waits for a release, to tell whether objects of a kind are healthy
	// (current), progressing or failed.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(h, size(h.current) > 0)",message="spec.release.healthCheckExprs[].current must not be empty"
	// +optional
	HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs,omitempty"`

	// PostRenderers are Kustomize patches and image overrides applied to
	// every release's manifests after Helm renders them: what the
	// administrator forces on every release.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	PostRenderers []helmv2.PostRenderer `json:"postRenderers,omitempty"`

	// Test holds the Helm test settings of each release.
	// +optional
	Test *helmv2.Test `json:"test,omitempty"`

	// Rollback holds the Helm rollback settings of each release.
	// +optional
	Rollback *helmv2.Rollback `json:"rollback,omitempty"`

	// Uninstall holds the Helm uninstall settings of each release.
	// +optional
	Uninstall *helmv2.Uninstall `json:"uninstall,omitempty"`
}

// ChartTemplate names a chart in a Flux source.
type ChartTemplate struct {
	// Name of the chart in the source (for a GitRepository or Bucket, a path).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Name string `json:"name"`

	// Version is a SemVer version or range; defaults to the latest ("*").
	// +kubebuilder:default="*"
	// +optional
	Version string `json:"version,omitempty"`

	// SourceRef is the HelmRepository, GitRepository or Bucket holding the chart.
	SourceRef helmv2.CrossNamespaceObjectReference `json:"sourceRef"`
}

// ApplicationDefinitionStatus reports what chartkind made of the definition.
type ApplicationDefinitionStatus struct {
	// ObservedGeneration is the generation last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready says whether the kind is served; its reason says why not.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// CRDName is the name of the generated CustomResourceDefinition.
	// +optional
	CRDName string `json:"crdName,omitempty"`

	// Kind, Plural and Prefix are the names in effect once defaults are applied.
	// +optional
	Names *EffectiveNames `json:"names,omitempty"`

	// ChartVersion is the version of the chart the schema came from.
	// +optional
	ChartVersion string `json:"chartVersion,omitempty"`

	// SchemaDigest is the sha256 digest of the schema (and values.yaml) the
	// served CRD was generated from.
	// +optional
	SchemaDigest string `json:"schemaDigest,omitempty"`

	// ArtifactDigest is the digest of the Flux artifact the served chart was
	// read from; empty when the chart came from elsewhere.
	// +optional
	ArtifactDigest string `json:"artifactDigest,omitempty"`

	// Objects is the number of application objects of the kind.
	// +optional
	Objects int32 `json:"objects"`

	// ReadyObjects is the number of those whose HelmRelease is Ready.
	// +optional
	ReadyObjects int32 `json:"readyObjects"`

	// AppliedCRD records chartkind's last apply of the CustomResourceDefinition:
	// the digest of what was applied and the CRD's identity and generation
	// right after. While the CRD to apply has that digest and the CRD is still
	// that object at that generation (a change to its spec by anyone else
	// moves the generation), the apply is skipped, so that a restarted
	// operator writes nothing.
	// +optional
	AppliedCRD *AppliedCRD `json:"appliedCRD,omitempty"`
}

// AppliedCRD is what chartkind applied to a CustomResourceDefinition and the
// state the apply left it in.
type AppliedCRD struct {
	// Digest identifies the applied labels, annotations and spec; the CRD
	// carries it too, in its chartkind.io/applied-hash annotation.
	Digest string `json:"digest"`

	// UID of the CRD the apply went to: a CRD deleted and created again is
	// another object, applied again.
	UID types.UID `json:"uid"`

	// Generation of the CRD after the apply.
	Generation int64 `json:"generation"`
}

// EffectiveNames are the names of a kind after defaulting.
type EffectiveNames struct {
	Kind     string `json:"kind"`
	Group    string `json:"group"`
	Plural   string `json:"plural"`
	Singular string `json:"singular"`
	Prefix   string `json:"prefix"`
}

// ApplicationDefinition turns a Helm chart into a Kubernetes kind.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=appdef;appdefs,categories=chartkind
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.application.kind`
// +kubebuilder:printcolumn:name="CRD",type=string,JSONPath=`.status.crdName`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Chart",type=string,JSONPath=`.status.chartVersion`
// +kubebuilder:printcolumn:name="Objects",type=integer,JSONPath=`.status.objects`
// +kubebuilder:printcolumn:name="Ready Objects",type=integer,JSONPath=`.status.readyObjects`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ApplicationDefinition struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ApplicationDefinitionSpec   `json:"spec"`
	Status ApplicationDefinitionStatus `json:"status,omitempty"`
}

// ApplicationDefinitionList is a list of ApplicationDefinitions.
// +kubebuilder:object:root=true
type ApplicationDefinitionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApplicationDefinition `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ApplicationDefinition{}, &ApplicationDefinitionList{})
}

// AdministratorValues are values of every release of the kind that belong to
// the administrator, not to the objects' users.
type AdministratorValues struct {
	// Set are values merged over each object's spec into its HelmRelease: maps
	// are merged key by key, and the administrator's scalar or list replaces
	// the user's. Every path from the top to a leaf of Set is locked too (see
	// Locked): a user setting it would be silently overridden, so it is
	// refused instead.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	Set *apiextensionsv1.JSON `json:"set,omitempty"`

	// Locked are value paths users may not set, dot-separated from the top of
	// the values: extraDeploy, image.registry, commonLabels.team (an entry of a
	// map). Setting one is refused by the API server, naming the path and this
	// definition; the release gets the administrator's value from Set, or the
	// chart's default. A path may not go through a list.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`
	// +listType=set
	// +optional
	Locked []string `json:"locked,omitempty"`
}
