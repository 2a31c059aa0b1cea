package valuescheck

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/chartkind/chartkind/internal/chart"
)

// TestLinksWhatHelmControllerLinks: the verdict is the one of the Helm inside
// helm-controller, so this build must link the Helm v4 and the jsonschema
// versions that hack/tools/helm-controller (the helm-controller the tests and
// the documentation use) links. A change of either on one side only fails here.
func TestLinksWhatHelmControllerLinks(t *testing.T) {
	b, err := os.ReadFile("../../hack/tools/helm-controller/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "helm.sh/helm/v4" || f[0] == "github.com/santhosh-tekuri/jsonschema/v6") {
			want[f[0]] = f[1]
		}
	}
	if len(want) != 2 {
		t.Fatalf("hack/tools/helm-controller/go.mod names %v; want Helm v4 and jsonschema v6", want)
	}
	for mod, v := range want {
		// The module graph of this build, replacements applied (a test
		// binary carries no dependency list of its own).
		out, err := exec.Command("go", "list", "-m", "-f", "{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}", mod).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -m %s: %v: %s", mod, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != v {
			t.Errorf("%s: helm-controller links %s, chartkind links %q", mod, v, got)
		}
	}
}

// TestHelmV4Differences: the cases where Helm v4 (which installs) and Helm
// v3.22 give different verdicts, and Validate gives v4's.
func TestHelmV4Differences(t *testing.T) {
	quietHelm(t)
	for name, tc := range map[string]struct {
		schema, values, spec string
		v4OK, v3OK           bool
	}{
		// Helm v4 drops the nulls of values.yaml when merging; v3 kept them
		// and checked them against the schema.
		"a null default is no value":               {`{"properties":{"a":{"type":"string"}}}`, "a: null\n", `{}`, true, false},
		"a null default does not satisfy required": {`{"required":["a"]}`, "a: null\n", `{}`, false, true},
		"a nested null default is no value":        {`{"properties":{"o":{"properties":{"a":{"type":"integer"}}}}}`, "o:\n  a: null\n", `{"o":{}}`, true, false},
		// jsonschema v6.0.2 (linked by Helm v4 in helm-controller) compares a
		// number with a string by its text; v6.0.3 does not. Both Helms run
		// v6.0.2 here, so they agree; the verdict is the one helm-controller gives.
		"const string accepts the number":      {`{"properties":{"n":{"const":"5"}}}`, "", `{"n":5}`, true, true},
		"enum compares types first":            {`{"properties":{"n":{"enum":["1.5","x"]}}}`, "", `{"n":1.5}`, false, false},
		"the string is no number":              {`{"properties":{"n":{"const":5}}}`, "", `{"n":"5"}`, false, false},
		"number after its text is a duplicate": {`{"properties":{"l":{"uniqueItems":true}}}`, "", `{"l":["5",5]}`, false, false},
	} {
		t.Run(name, func(t *testing.T) {
			c := &chart.Chart{Name: "d", Version: "1.0.0", Schema: []byte(tc.schema)}
			if tc.values != "" {
				c.Values = []byte(tc.values)
			}
			v := mustNew(t, c, nil)
			hc, err := helmChart(c)
			if err != nil {
				t.Fatal(err)
			}
			spec := []byte(tc.spec)
			if err := helmVerdict(hc, spec); (err == nil) != tc.v4OK {
				t.Fatalf("Helm v4: %v, want accepted=%v", err, tc.v4OK)
			}
			hc3 := loadV3Values(t, c)
			if err := helmV3Verdict(hc3, spec); (err == nil) != tc.v3OK {
				t.Fatalf("Helm v3: %v, want accepted=%v", err, tc.v3OK)
			}
			if errs := v.Validate(asAPIServerDecodes(t, spec)); (len(errs) == 0) != tc.v4OK {
				t.Fatalf("Validate: %v, want Helm v4's accepted=%v", errs, tc.v4OK)
			}
		})
	}
}

// TestMultiDocumentValues: Helm v4 reads every YAML document of values.yaml
// and merges them (v3 read the first).
func TestMultiDocumentValues(t *testing.T) {
	c := &chart.Chart{Name: "m", Version: "1.0.0", Schema: []byte(`{"required":["b"],"properties":{"a":{"type":"integer"},"b":{"type":"integer"}}}`),
		Values: []byte("a: 1\n---\nb: 2\n")}
	v := mustNew(t, c, nil)
	if errs := v.Validate(map[string]any{}); len(errs) > 0 {
		t.Fatalf("b comes from the second document: %v", errs)
	}
	if errs := v.Validate(map[string]any{"b": "x"}); len(errs) != 1 {
		t.Fatalf("b is an integer: %v", errs)
	}
}
