package valuescheck

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/chartkind/chartkind/internal/chart"
)

func loadChart(t testing.TB, dir string) *chart.Chart {
	t.Helper()
	c, err := chart.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustNew(t testing.TB, c *chart.Chart, override []byte) *Validator {
	t.Helper()
	v, err := New(c, override)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func lines(errs field.ErrorList) string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return strings.Join(out, "\n")
}

// TestMessages pins the wording and order of errors on the example chart: one
// error per cause, on the field it concerns, rooted at spec, sorted by field.
func TestMessages(t *testing.T) {
	quietHelm(t)
	v := mustNew(t, loadChart(t, "../../examples/charts/postgres"), nil)
	for name, tc := range map[string]struct {
		spec string
		want []string
	}{
		"defaults only":  {`{}`, nil},
		"valid override": {`{"replicas": 3, "version": "17", "users": {"orders": {"roles": ["login", "createdb"]}}}`, nil},
		"many causes": {
			`{"replicas": 9, "version": "13", "size": "abc", "resources": {"gpu": 1, "cpu": true}, "users": {"a": {"roles": ["root", 3]}}}`,
			[]string{
				`spec.replicas: Invalid value: 9: must be less than or equal to 5`,
				`spec.resources.cpu: Invalid value: true: must be of type integer or string`,
				`spec.resources.gpu: Forbidden: field not declared in the schema`,
				`spec.size: Invalid value: "abc": must match pattern '^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$'`,
				`spec.users.a.roles[0]: Unsupported value: "root": supported values: "login", "superuser", "createdb", "replication"`,
				`spec.users.a.roles[1]: Invalid value: 3: must be of type string`,
				`spec.version: Unsupported value: "13": supported values: "14", "15", "16", "17"`,
			},
		},
		"required in a new map entry": {`{"databases": {"x": {}}}`, []string{`spec.databases.x.owner: Required value`}},
		"null removes a required default": {
			`{"databases": {"app": {"owner": null}}}`,
			[]string{`spec.databases.app.owner: Required value: set to null, which removes the chart's default`},
		},
		"null removes an optional default": {`{"version": null, "backup": null}`, nil},
		"length":                           {`{"databases": {"app": {"owner": ""}}}`, []string{`spec.databases.app.owner: Too short: must be at least 1 character`}},
		"lower bound":                      {`{"backup": {"retentionDays": 0}}`, []string{`spec.backup.retentionDays: Invalid value: 0: must be greater than or equal to 1`}},
		"number where integer":             {`{"replicas": 2.5}`, []string{`spec.replicas: Invalid value: 2.5: must be of type integer`}},
		"whole float is an integer":        {`{"replicas": 2.0}`, nil},
		"type union":                       {`{"parameters": {"a": [1]}}`, []string{`spec.parameters.a: Invalid value: [1]: must be of type boolean, integer or string`}},
		"object where string":              {`{"version": {"major": 17}}`, []string{`spec.version: Invalid value: {"major":17}: must be of type string`}},
		"table replaced by a scalar":       {`{"resources": "big"}`, []string{`spec.resources: Invalid value: "big": must be of type object`}},
	} {
		t.Run(name, func(t *testing.T) {
			spec := asAPIServerDecodes(t, []byte(tc.spec))
			got := lines(v.Validate(spec))
			if want := strings.Join(tc.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			if spec2 := asAPIServerDecodes(t, []byte(tc.spec)); len(spec2) != len(spec) || string(mustJSON(t, spec2)) != string(mustJSON(t, spec)) {
				t.Error("Validate modified its argument")
			}
		})
	}
}

// TestAlternatives covers how failed anyOf/oneOf are reported.
func TestAlternatives(t *testing.T) {
	schema := []byte(`{
	  "properties": {
	    "port": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[0-9]+$"}]},
	    "tls": {"oneOf": [
	      {"type": "object", "required": ["secretName"], "properties": {"secretName": {"type": "string"}}},
	      {"type": "object", "required": ["issuer"], "properties": {"issuer": {"type": "string"}}}
	    ]},
	    "size": {"oneOf": [{"type": "integer"}, {"type": "string", "maxLength": 3}]}
	  }
	}`)
	v := mustNew(t, nil, schema)
	for spec, want := range map[string]string{
		`{"port": true}`:   `spec.port: Invalid value: true: must be of type integer or string`,
		`{"port": 0}`:      `spec.port: Invalid value: 0: must be greater than or equal to 1`,
		`{"port": "x1"}`:   `spec.port: Invalid value: "x1": must match pattern '^[0-9]+$'`,
		`{"size": "long"}`: `spec.size: Too long: may not be more than 3 characters`,
		`{"tls": {"secretName": "a", "issuer": "b"}}`: `spec.tls: Invalid value: {"issuer":"b","secretName":"a"}: must match exactly one schema of oneOf (#/properties/tls/oneOf), but matches #0 and #1`,
		`{"tls": {}}`:              `spec.tls: Invalid value: {}: must match a schema of oneOf (#/properties/tls/oneOf): secretName: Required value; or issuer: Required value`,
		`{"tls": {"issuer": "b"}}`: ``,
	} {
		if got := lines(v.Validate(asAPIServerDecodes(t, []byte(spec)))); got != want {
			t.Errorf("%s:\ngot  %s\nwant %s", spec, got, want)
		}
	}
}

// TestNilSafe: no validator, no chart or no schema means nothing to check.
func TestNilSafe(t *testing.T) {
	garbage := map[string]any{"anything": []any{int64(1), nil}, "x": nil}
	var nilV *Validator
	if errs := nilV.Validate(garbage); errs != nil {
		t.Fatalf("nil validator: %v", errs)
	}
	if nilV.Unchecked() != nil {
		t.Fatal("nil validator has unchecked documents")
	}
	noChart := mustNew(t, nil, nil)
	noSchema := mustNew(t, &chart.Chart{Name: "plain", Version: "1.0.0", Values: []byte("a: 1\n")}, nil)
	for _, v := range []*Validator{noChart, noSchema} {
		if errs := v.Validate(garbage); errs != nil {
			t.Fatalf("no schema: %v", errs)
		}
	}
}

// TestOverride: the definition's inline schema replaces the chart's for the
// top-level values, which are still merged with the chart's values.yaml.
func TestOverride(t *testing.T) {
	pg := loadChart(t, "../../examples/charts/postgres")
	override := []byte(`{"type": "object", "required": ["replicas"], "properties": {"replicas": {"type": "integer", "maximum": 2}, "extra": {"type": "string"}}}`)
	v := mustNew(t, pg, override)
	// "extra" is unknown to the chart's closed schema but fine for the override;
	// replicas: 2 comes from values.yaml and satisfies "required".
	if errs := v.Validate(map[string]any{"extra": "x"}); errs != nil {
		t.Fatalf("override not used: %v", errs)
	}
	if got, want := lines(v.Validate(map[string]any{"replicas": int64(3)})), "spec.replicas: Invalid value: 3: must be less than or equal to 2"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got, want := lines(v.Validate(map[string]any{"replicas": nil})), "spec.replicas: Required value: set to null, which removes the chart's default"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	// Without a chart, nothing is merged: required means required in the spec.
	alone := mustNew(t, nil, override)
	if got, want := lines(alone.Validate(nil)), "spec.replicas: Required value"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestSubcharts checks a chart with a conditional subchart and an aliased copy
// of it against the whole of helm install's values handling, with a freshly
// loaded chart per case as each install has.
func TestSubcharts(t *testing.T) {
	quietHelm(t)
	const dir = "testdata/umbrella"
	v := mustNew(t, loadChart(t, dir), nil)
	for spec, want := range map[string]string{
		`{}`:                          ``,
		`{"child": {"port": 0}}`:      `spec.child.port: Invalid value: 0: must be greater than or equal to 1`,
		`{"child": {"port": "http"}}`: `spec.child.port: Invalid value: "http": must be of type integer`,
		`{"child": {"name": null}}`:   `spec.child.name: Required value: set to null, which removes the chart's default`,
		`{"child": {"enabled": false, "port": 0}}`:     ``, // disabled: Helm drops the subchart and its check
		`{"second": {"enabled": true}}`:                ``,
		`{"second": {"enabled": true, "port": 70000}}`: `spec.second.port: Invalid value: 70000: must be less than or equal to 65535`,
		`{"global": {"env": "dev"}}`:                   "spec.child.global.env: Unsupported value: \"dev\": supported values: \"prod\", \"staging\"",
		`{"global": {"env": "Prod"}}`: "spec.child.global.env: Unsupported value: \"Prod\": supported values: \"prod\", \"staging\"\n" +
			"spec.global.env: Invalid value: \"Prod\": must match pattern '^[a-z]+$'",
		`{"child": "on"}`: `spec.child: Invalid value: "on": must be of type object: it holds the values of subchart child`,
		`{"mode": null}`:  `spec.mode: Required value: set to null, which removes the chart's default`,
		`{"child": null}`: ``,
	} {
		specJSON := []byte(spec)
		got := lines(v.Validate(asAPIServerDecodes(t, specJSON)))
		if got != want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", spec, got, want)
		}
		helmErr := helmVerdict(loadV4(t, dir), specJSON)
		if (helmErr == nil) != (got == "") {
			t.Errorf("%s: Helm says %v, Validate says %q", spec, helmErr, got)
		}
	}
}

// TestConcurrent: one Validator serves concurrent webhook requests; dependency
// processing works on copies, so results do not depend on other calls.
func TestConcurrent(t *testing.T) {
	quietHelm(t)
	v := mustNew(t, loadChart(t, "testdata/umbrella"), nil)
	specs := []map[string]any{
		{"second": map[string]any{"enabled": true, "port": int64(0)}},
		{"child": map[string]any{"enabled": false}},
		{},
	}
	want := make([]string, len(specs))
	for i, s := range specs {
		want[i] = lines(v.Validate(s))
	}
	if want[0] == "" || want[1] != "" {
		t.Fatalf("unexpected verdicts: %q", want)
	}
	var wg sync.WaitGroup
	var bad atomic.Int32
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 50; n++ {
				i := (g + n) % len(specs)
				if lines(v.Validate(specs[i])) != want[i] {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d concurrent results differ from sequential ones", bad.Load())
	}
}

// TestDeterministic: jsonschema reports properties in map order; the errors
// come out sorted regardless.
func TestDeterministic(t *testing.T) {
	v := mustNew(t, loadChart(t, "../../examples/charts/redis"), nil)
	spec := map[string]any{"replicas": int64(0), "authEnabled": "yes", "maxmemory": "lots", "maxmemoryPolicy": "lru",
		"persistence": map[string]any{"enabled": "no", "size": true}, "resourcesPreset": "huge"}
	first := lines(v.Validate(spec))
	if strings.Count(first, "\n") != 6 {
		t.Fatalf("want 7 errors, got:\n%s", first)
	}
	for i := 0; i < 30; i++ {
		if got := lines(v.Validate(spec)); got != first {
			t.Fatalf("run %d differs:\n%s\nvs\n%s", i, got, first)
		}
	}
}

// TestNumbersAsHelmReadsThem: Helm reads every number as a float64, so an
// integer just above a bound may be equal to it for Helm; the verdict must be
// Helm's, not that of an exact int64 comparison.
func TestNumbersAsHelmReadsThem(t *testing.T) {
	quietHelm(t)
	c := &chart.Chart{Name: "n", Version: "1.0.0", Schema: []byte(`{"properties": {"n": {"type": "integer", "maximum": 9007199254740992}}}`)}
	v := mustNew(t, c, nil)
	hc, err := helmChart(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{9007199254740992, 9007199254740993, 9007199254740995} {
		spec := map[string]any{"n": n}
		got := v.Validate(spec)
		helmErr := helmVerdict(hc, mustJSON(t, spec))
		if (helmErr == nil) != (len(got) == 0) {
			t.Errorf("n=%d: Helm says %v, Validate says %v", n, helmErr, got)
		}
	}
}

// TestRemoteRefsAreNotFetched: Helm would fetch an http(s) $ref at install; a
// webhook must not, so the referenced node accepts anything and Unchecked says
// so. The server counts requests to prove none was made.
func TestRemoteRefsAreNotFetched(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"definitions": {"port": {"type": "integer"}}}`))
	}))
	defer srv.Close()
	schema := []byte(`{"properties": {"port": {"$ref": "` + srv.URL + `/defs.json#/definitions/port"}, "name": {"type": "string"}}}`)
	v := mustNew(t, nil, schema)
	if errs := v.Validate(map[string]any{"port": "not an integer"}); errs != nil {
		t.Fatalf("value under a remote $ref was checked: %v", errs)
	}
	if errs := v.Validate(map[string]any{"name": int64(1)}); len(errs) != 1 {
		t.Fatalf("local part not checked: %v", errs)
	}
	if u := v.Unchecked(); len(u) != 1 || !strings.Contains(u[0], srv.URL+"/defs.json") || !strings.HasPrefix(u[0], "spec.schema: ") {
		t.Fatalf("Unchecked = %q", u)
	}
	if hits.Load() != 0 {
		t.Fatalf("the validator fetched the remote schema %d times", hits.Load())
	}
}

// TestSchemaErrors: a schema Helm cannot compile fails New, naming the schema
// and the JSON pointer.
func TestSchemaErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		c        *chart.Chart
		override string
		want     []string
	}{
		"bad keyword":  {&chart.Chart{Name: "b", Source: "charts/b", Schema: []byte(`{"properties": {"n": {"minimum": "one"}}}`)}, "", []string{"charts/b: values.schema.json", "#/properties/n/minimum"}},
		"empty file":   {&chart.Chart{Name: "e", Source: "charts/e", Schema: []byte{}}, "", []string{"charts/e: values.schema.json", "invalid JSON"}},
		"bad override": {nil, `{"type": 5}`, []string{"spec.schema", "#/type"}},
		"bad values":   {&chart.Chart{Name: "v", Source: "charts/v", Values: []byte("a: [")}, "", []string{"charts/v: values.yaml"}},
		"bad subchart": {brokenSubchart(t), "", []string{"charts/child/values.schema.json", "#/properties/port/maximum"}},
	} {
		t.Run(name, func(t *testing.T) {
			var override []byte
			if tc.override != "" {
				override = []byte(tc.override)
			}
			_, err := New(tc.c, override)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// brokenSubchart is the umbrella chart with an invalid schema in its subchart.
func brokenSubchart(t *testing.T) *chart.Chart {
	t.Helper()
	hc, err := loader.Load("testdata/umbrella")
	if err != nil {
		t.Fatal(err)
	}
	hc.Dependencies()[0].Schema = []byte(`{"properties": {"port": {"maximum": "big"}}}`)
	return chart.FromHelm(hc, "umbrella")
}
