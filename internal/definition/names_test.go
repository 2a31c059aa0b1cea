package definition

import (
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

func TestPluralize(t *testing.T) {
	for in, want := range map[string]string{
		"postgres":       "postgreses",
		"redis":          "redises",
		"box":            "boxes",
		"batch":          "batches",
		"mesh":           "meshes",
		"policy":         "policies",
		"gateway":        "gateways",
		"vm":             "vms",
		"virtualmachine": "virtualmachines",
		"kafka":          "kafkas",
	} {
		if got := Pluralize(in); got != want {
			t.Errorf("Pluralize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKindFromChartName(t *testing.T) {
	for in, want := range map[string]string{
		"my-db":           "MyDb",
		"redis":           "Redis",
		"kube_prometheus": "KubePrometheus",
		"nginx-ingress2":  "NginxIngress2",
	} {
		got, err := KindFromChartName(in)
		if err != nil || got != want {
			t.Errorf("KindFromChartName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "---", "9lives", strings.Repeat("a", 64)} {
		if got, err := KindFromChartName(bad); err == nil {
			t.Errorf("KindFromChartName(%q) = %q, want an error", bad, got)
		}
	}
}

func TestEffectiveDefaults(t *testing.T) {
	def := &v1alpha1.ApplicationDefinition{Spec: v1alpha1.ApplicationDefinitionSpec{
		Application: v1alpha1.ApplicationNames{Kind: "Postgres", ShortNames: []string{"pg", "pg"}, Categories: []string{"databases", "apps"}},
	}}
	n := Effective(def)
	if n.Group != "apps.chartkind.io" || n.Plural != "postgreses" || n.Singular != "postgres" || n.Prefix != "postgres-" {
		t.Fatalf("unexpected defaults: %+v", n)
	}
	if strings.Join(n.Categories, ",") != "apps,databases" || strings.Join(n.ShortNames, ",") != "pg" {
		t.Fatalf("categories/short names not a sorted set with apps: %+v", n)
	}
	if n.CRDName() != "postgreses.apps.chartkind.io" || n.ReleaseName("orders") != "postgres-orders" || n.MaxObjectNameLength() != 44 {
		t.Fatalf("derived names wrong: %s %s %d", n.CRDName(), n.ReleaseName("orders"), n.MaxObjectNameLength())
	}

	def.Spec.Application.Plural, def.Spec.Application.Singular, def.Spec.Application.Group = "pgs", "pg1", "db.example.com"
	def.Spec.Release.Prefix = "pg-"
	n = Effective(def)
	if n.Plural != "pgs" || n.Singular != "pg1" || n.Group != "db.example.com" || n.Prefix != "pg-" {
		t.Fatalf("explicit names not kept: %+v", n)
	}
}

func TestValidate(t *testing.T) {
	good := func() *v1alpha1.ApplicationDefinition {
		return &v1alpha1.ApplicationDefinition{
			Spec: v1alpha1.ApplicationDefinitionSpec{
				Application: v1alpha1.ApplicationNames{Kind: "Postgres"},
				Release: v1alpha1.ReleaseSpec{Chart: &v1alpha1.ChartTemplate{Name: "postgres",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}}},
			},
		}
	}
	d := good()
	d.Name = "postgres"
	if err := Validate(d); err != nil {
		t.Fatalf("valid definition refused: %v", err)
	}
	cases := map[string]func(*v1alpha1.ApplicationDefinition){
		"metadata.name":         func(d *v1alpha1.ApplicationDefinition) { d.Name = "" },
		"spec.application.kind": func(d *v1alpha1.ApplicationDefinition) { d.Spec.Application.Kind = "postgres" },
		"exactly one of chart": func(d *v1alpha1.ApplicationDefinition) {
			d.Spec.Release.ChartRef = &helmv2.CrossNamespaceSourceReference{Kind: "OCIRepository", Name: "x"}
		},
		"spec.release.prefix":      func(d *v1alpha1.ApplicationDefinition) { d.Spec.Release.Prefix = "Bad_Prefix" },
		"exactly one of chart and": func(d *v1alpha1.ApplicationDefinition) { d.Spec.Release.Chart = nil },
	}
	for want, mutate := range cases {
		d := good()
		d.Name = "postgres"
		mutate(d)
		err := Validate(d)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("mutation %q: got %v, want an error naming %q", want, err, want)
		}
	}
}

func TestForChart(t *testing.T) {
	def, err := ForChart("my-db", "1.2.3", v1alpha1.ChartTemplate{SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}})
	if err != nil {
		t.Fatal(err)
	}
	if def.Name != "mydb" || def.Spec.Application.Kind != "MyDb" || def.Spec.Release.Chart.Name != "my-db" || def.Spec.Release.Chart.Version != "1.2.3" {
		t.Fatalf("unexpected derived definition: %+v", def)
	}
	if err := Validate(def); err != nil {
		t.Fatalf("derived definition does not validate: %v", err)
	}
}

// A definition derived from a long chart name gets a prefix that leaves
// object names room under Helm's 53 characters (the CRD refuses longer names).
func TestForChartShortensLongPrefixes(t *testing.T) {
	def, err := ForChart("prometheus-community-prometheus-operator-admission-webhook", "1.0.0", v1alpha1.ChartTemplate{})
	if err != nil {
		t.Fatal(err)
	}
	n := Effective(def)
	if len(n.Prefix) != 32 || !strings.HasSuffix(n.Prefix, "-") || n.MaxObjectNameLength() != 21 {
		t.Errorf("prefix %q (%d), max object name %d", n.Prefix, len(n.Prefix), n.MaxObjectNameLength())
	}
	if err := Validate(def); err != nil {
		t.Errorf("derived definition invalid: %v", err)
	}
	short, _ := ForChart("redis", "1.0.0", v1alpha1.ChartTemplate{})
	if short.Spec.Release.Prefix != "" || Effective(short).Prefix != "redis-" {
		t.Errorf("short chart name: prefix %q / %q", short.Spec.Release.Prefix, Effective(short).Prefix)
	}
}
