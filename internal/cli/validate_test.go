package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	defcontroller "github.com/chartkind/chartkind/internal/controller/definition"
)

const samples = "../../config/samples"

// gitopsArgs checks the example GitOps directory against the example charts,
// with the definitions of config/samples (which also hold two valid objects).
func gitopsArgs(extra ...string) []string {
	return append(append([]string{"validate"}, extra...),
		filepath.Join(examples, "postgres"), filepath.Join(examples, "redis"), samples, "testdata/validate/gitops")
}

// TestValidateText: one line per problem, in file and line order, the CRD's
// message where the API server refuses a field and the chart schema's where
// only the webhook (and Helm) would; exit code 1; a summary on stderr.
func TestValidateText(t *testing.T) {
	code, out, errOut := run(t, gitopsArgs()...)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, errOut)
	}
	golden(t, "validate/text.golden", out)
	// The sample definitions set no serviceAccountName: each is warned about
	// (stdout and the exit code do not change).
	want := "warning: " + defcontroller.NoServiceAccountWarning("postgres") + "\n" +
		"warning: " + defcontroller.NoServiceAccountWarning("redis") + "\n" +
		"chartkind validate: 7 object(s) in 9 file(s): 4 valid, 3 invalid, 1 of a kind no given chart or definition defines; 10 problem(s)\n"
	if errOut != want {
		t.Fatalf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
	// The Deployment and the ConfigMap beside the objects are not checked,
	// and neither is README.txt.
	for _, ignored := range []string{"Deployment", "ConfigMap", "README"} {
		if strings.Contains(out, ignored) {
			t.Errorf("output mentions %s:\n%s", ignored, out)
		}
	}
	if _, again, _ := run(t, gitopsArgs()...); again != out {
		t.Fatal("validate is not deterministic")
	}
}

// TestValidateJSON: the same problems as one JSON document, with the check
// that would refuse each and a summary.
func TestValidateJSON(t *testing.T) {
	code, out, errOut := run(t, gitopsArgs("-o", "json")...)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, errOut)
	}
	golden(t, "validate/json.golden", out)
	var rep ValidateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if rep.Summary != (ValidateSummary{Files: 9, Objects: 7, Valid: 4, Invalid: 3, Unknown: 1, Problems: 10}) || len(rep.Problems) != 10 {
		t.Fatalf("summary %+v, %d problems", rep.Summary, len(rep.Problems))
	}
	byField := map[string]Problem{}
	for _, p := range rep.Problems {
		byField[p.Kind+" "+p.Name+" "+p.Field] = p
	}
	// null removes the chart's default owner: the CRD cannot tell (it sees no
	// merged values), the chart's schema can.
	if p := byField["Postgres billing spec.databases.app.owner"]; p.Check != "chart" || p.Type != "FieldValueRequired" || p.Line != 47 || p.Document != 3 {
		t.Errorf("webhook-only problem reported as %+v", p)
	}
	if p := byField["Postgres billing spec.replicas"]; p.Check != "crd" || p.Line != 38 || p.Namespace != "shop" {
		t.Errorf("CRD problem reported as %+v", p)
	}
	if p := byField["Mysql legacy "]; p.Type != "UnknownKind" || p.Check != "document" {
		t.Errorf("unknown kind reported as %+v", p)
	}
}

// TestValidateExitCodes: 0 when every object passes, 1 for any problem or any
// input that cannot be used, 2 for usage errors.
func TestValidateExitCodes(t *testing.T) {
	redis := filepath.Join(examples, "redis")
	for name, tc := range map[string]struct {
		args    []string
		code    int
		stdout  []string
		stderr  []string
		nothing bool // nothing on stdout
	}{
		"valid objects": {
			args: []string{filepath.Join(examples, "postgres"), redis, samples}, code: 0, nothing: true,
			stderr: []string{"2 object(s)", "2 valid, 0 invalid"},
		},
		"kind derived from a chart": {
			args: []string{redis, "testdata/validate/gitops/apps/nested"}, code: 0, nothing: true,
		},
		"unknown kind": {
			args: []string{redis, "testdata/validate/unknown-only.yaml"}, code: 1,
			stdout: []string{"testdata/validate/unknown-only.yaml:1: Mysql legacy: no chart or ApplicationDefinition given for kind Mysql (apps.chartkind.io); kinds given: Redis"},
		},
		"unknown kind ignored": {
			args: []string{"--ignore-unknown", redis, "testdata/validate/unknown-only.yaml"}, code: 0, nothing: true,
			stderr: []string{"1 of a kind no given chart or definition defines"},
		},
		"unreadable document": {
			args: []string{redis, "testdata/validate/broken/bad.yaml"}, code: 1,
			stdout: []string{"testdata/validate/broken/bad.yaml:11: cannot be read: did not find expected ',' or ']'"},
		},
		"definition without its chart": {
			args: []string{redis, "testdata/validate/broken"}, code: 1,
			stderr: []string{`error: testdata/validate/broken/lonely-definition.yaml: ApplicationDefinition "lonely": no chart given for it`},
		},
		"missing path": {
			args: []string{redis, "testdata/validate/nope"}, code: 1,
			stderr: []string{"error: reading testdata/validate/nope"},
		},
		"no PATH":      {args: nil, code: 2, stderr: []string{"at least one PATH is required"}, nothing: true},
		"bad -o":       {args: []string{"-o", "yaml", redis}, code: 2, stderr: []string{"-o must be text or json"}, nothing: true},
		"unknown flag": {args: []string{"--strict", redis}, code: 2, nothing: true},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"validate"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			if tc.nothing && out != "" {
				t.Errorf("stdout not empty:\n%s", out)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, out)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func TestFieldTokens(t *testing.T) {
	for path, want := range map[string]string{
		"spec.a.b":                              "spec|a|b",
		"spec.users.a.roles[0]":                 "spec|users|a|roles|0",
		"spec.labels[app.kubernetes.io/name].x": "spec|labels|app.kubernetes.io/name|x",
		"":                                      "",
	} {
		if got := strings.Join(fieldTokens(path), "|"); got != want {
			t.Errorf("%q: got %q, want %q", path, got, want)
		}
	}
}

// TestValidateNames: a name too long for the kind's Helm release name, and a
// name with a dot, are reported as the API server reports them from the
// CRD's name rules: file, line of metadata.name, object, field, message.
func TestValidateNames(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("a", 48) // "redis-" + 48 = 54 > 53
	file := filepath.Join(dir, "names.yaml")
	doc := "apiVersion: apps.chartkind.io/v1alpha1\nkind: Redis\nmetadata:\n  name: " + long + "\n  namespace: shop\n---\n" +
		"apiVersion: apps.chartkind.io/v1alpha1\nkind: Redis\nmetadata:\n  name: a.b\n  namespace: shop\n---\n" +
		"apiVersion: apps.chartkind.io/v1alpha1\nkind: Redis\nmetadata:\n  name: " + long[:47] + "\n  namespace: shop\n"
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "validate", filepath.Join(examples, "redis"), file)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := file + ":4: Redis shop/" + long + `: metadata.name: Invalid value: Redis names may have at most 47 characters: the Helm release name is "redis-" + the name, at most 53` + "\n" +
		file + `:10: Redis shop/a.b: metadata.name: Invalid value: Redis names may not contain dots: the Helm release name is "redis-" + the name, and charts name Services (whose names may not contain dots) and other objects after it` + "\n"
	if out != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", out, want)
	}
	_, out, _ = run(t, "validate", "-o", "json", filepath.Join(examples, "redis"), file)
	var rep ValidateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 2 || rep.Summary.Valid != 1 {
		t.Fatalf("problems %+v, summary %+v", rep.Problems, rep.Summary)
	}
	for _, p := range rep.Problems {
		if p.Field != "metadata.name" || p.Check != "crd" || p.Type != "FieldValueInvalid" || p.File != file {
			t.Errorf("problem %+v", p)
		}
	}
}

// TestValidateLocked: a GitOps object that sets a path the definition locks,
// or one of its administrator values, is reported with the API server's
// message naming the path and the definition.
func TestValidateLocked(t *testing.T) {
	dir := t.TempDir()
	def, err := os.ReadFile(filepath.Join(samples, "chartkind_v1alpha1_applicationdefinition_redis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(def) + "  values:\n    set:\n      maxmemoryPolicy: allkeys-lru\n    locked: [maxmemory]\n---\n" +
		"apiVersion: apps.chartkind.io/v1alpha1\nkind: Redis\nmetadata:\n  name: cache\n  namespace: shop\nspec:\n  maxmemory: 1gb\n  maxmemoryPolicy: noeviction\n---\n" +
		"apiVersion: apps.chartkind.io/v1alpha1\nkind: Redis\nmetadata:\n  name: fine\n  namespace: shop\n"
	file := filepath.Join(dir, "locked.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "validate", filepath.Join(examples, "redis"), file)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	for _, p := range []string{"maxmemory", "maxmemoryPolicy"} {
		want := "Redis shop/cache: spec." + p + ": Forbidden: spec." + p + " is locked: it is set by the administrator (ApplicationDefinition redis)"
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "shop/fine") {
		t.Errorf("an object without locked paths was reported:\n%s", out)
	}
}
