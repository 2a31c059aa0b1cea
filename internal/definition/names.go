// Package definition derives what an ApplicationDefinition leaves implicit: the
// plural and singular names of its kind, the release prefix, and a whole
// definition for a chart that comes without one.
//
// The API server can only apply static defaults, so names derived from the kind
// are computed here, in one place, and reported in the definition's status.
package definition

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// MaxReleaseNameLength is Helm's limit on release names (DNS-1123 label minus
// room for the suffixes Helm adds to generated objects).
const MaxReleaseNameLength = 53

// AppsCategory is added to every generated kind so `kubectl get apps` lists them all.
const AppsCategory = "apps"

// Names are a kind's names once every default is applied.
type Names struct {
	Kind       string
	Group      string
	Plural     string
	Singular   string
	ShortNames []string
	Categories []string
	Prefix     string
}

// CRDName is the name of the CustomResourceDefinition serving these names.
func (n Names) CRDName() string { return n.Plural + "." + n.Group }

// ReleaseName is the HelmRelease (and Helm release) name of the object called name.
func (n Names) ReleaseName(name string) string { return n.Prefix + name }

// MaxObjectNameLength is the longest object name whose release name fits Helm's limit.
func (n Names) MaxObjectNameLength() int { return MaxReleaseNameLength - len(n.Prefix) }

// Effective returns the names of def's kind with defaults applied.
func Effective(def *v1alpha1.ApplicationDefinition) Names {
	app := def.Spec.Application
	n := Names{
		Kind:     app.Kind,
		Group:    app.Group,
		Plural:   app.Plural,
		Singular: app.Singular,
		Prefix:   def.Spec.Release.Prefix,
	}
	if n.Group == "" {
		n.Group = v1alpha1.DefaultGroup
	}
	if n.Singular == "" {
		n.Singular = strings.ToLower(app.Kind)
	}
	if n.Plural == "" {
		n.Plural = Pluralize(n.Singular)
	}
	if n.Prefix == "" {
		n.Prefix = n.Singular + "-"
	}
	n.ShortNames = sortedSet(app.ShortNames)
	n.Categories = sortedSet(append([]string{AppsCategory}, app.Categories...))
	return n
}

func sortedSet(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// Pluralize makes the English plural of a lowercase singular resource name the
// way people expect to type it: postgres → postgreses, policy → policies, vm → vms.
func Pluralize(singular string) string {
	switch {
	case singular == "":
		return ""
	case hasAnySuffix(singular, "s", "x", "z", "ch", "sh"):
		return singular + "es"
	case strings.HasSuffix(singular, "y") && len(singular) > 1 && !isVowel(rune(singular[len(singular)-2])):
		return singular[:len(singular)-1] + "ies"
	default:
		return singular + "s"
	}
}

func hasAnySuffix(s string, suffixes ...string) bool {
	for _, suf := range suffixes {
		if strings.HasSuffix(s, suf) {
			return true
		}
	}
	return false
}

func isVowel(r rune) bool { return strings.ContainsRune("aeiou", r) }

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9]+`)

// KindFromChartName makes a kind from a chart name: my-db → MyDb, redis → Redis.
func KindFromChartName(chart string) (string, error) {
	var b strings.Builder
	for _, part := range nonAlnum.Split(chart, -1) {
		if part == "" {
			continue
		}
		r := []rune(part)
		b.WriteRune(unicode.ToUpper(r[0]))
		b.WriteString(string(r[1:]))
	}
	kind := b.String()
	if kind == "" || !unicode.IsLetter(rune(kind[0])) {
		return "", fmt.Errorf("chart name %q does not start with a letter, so no kind can be derived from it: write an ApplicationDefinition", chart)
	}
	if len(kind) > 63 {
		return "", fmt.Errorf("kind %q derived from chart name %q is longer than 63 characters", kind, chart)
	}
	return kind, nil
}

var (
	kindPattern   = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	prefixPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*)?$`)
)

// Validate checks what `chartkind generate` needs of a definition read from a
// file, where the API server's validation has not run. Messages name the field.
func Validate(def *v1alpha1.ApplicationDefinition) error {
	var problems []string
	if def.Name == "" {
		problems = append(problems, "metadata.name: required")
	}
	if k := def.Spec.Application.Kind; !kindPattern.MatchString(k) || len(k) > 63 {
		problems = append(problems, fmt.Sprintf("spec.application.kind: %q must be CamelCase letters and digits, starting with a capital, at most 63 characters", k))
	}
	if (def.Spec.Release.Chart == nil) == (def.Spec.Release.ChartRef == nil) {
		problems = append(problems, "spec.release: exactly one of chart and chartRef must be set")
	}
	if p := def.Spec.Release.Prefix; p != "" && (!prefixPattern.MatchString(p) || len(p) > maxPrefixLength) {
		problems = append(problems, fmt.Sprintf("spec.release.prefix: %q must be lowercase letters, digits and dashes, at most 32 characters", p))
	}
	problems = append(problems, ReleaseProblems(def)...)
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("ApplicationDefinition %q: %s", def.Name, strings.Join(problems, "; "))
}

// ForChart returns the definition chartkind derives for a chart that comes
// without one: the kind from the chart name, the chart from source.
func ForChart(chartName, chartVersion string, source v1alpha1.ChartTemplate) (*v1alpha1.ApplicationDefinition, error) {
	kind, err := KindFromChartName(chartName)
	if err != nil {
		return nil, err
	}
	src := source
	src.Name = chartName
	if src.Version == "" {
		src.Version = chartVersion
	}
	def := &v1alpha1.ApplicationDefinition{
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: kind},
			Release:     v1alpha1.ReleaseSpec{Chart: &src},
		},
	}
	def.APIVersion = v1alpha1.GroupVersion.String()
	def.Kind = "ApplicationDefinition"
	def.Name = strings.ToLower(kind)
	// A long chart name would derive a prefix that leaves object names little
	// or no room under Helm's 53 characters: give such a definition the
	// longest prefix an administrator could write (32 characters).
	if p := Effective(def).Prefix; len(p) > maxPrefixLength {
		def.Spec.Release.Prefix = strings.TrimRight(p[:maxPrefixLength-1], "-") + "-"
	}
	return def, nil
}

// maxPrefixLength is the longest spec.release.prefix the API accepts.
const maxPrefixLength = 32
