package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/generate"
	"github.com/chartkind/chartkind/internal/valuescheck"
)

const validateUsage = `Usage: chartkind validate [flags] PATH...

Checks application objects (a Postgres, a Redis, …) offline, as the cluster
would when they are applied: the generated CRD's schema, as the API server
checks it, and the chart's own values.schema.json on the spec merged with the
chart's values.yaml, as chartkind's admission webhook and Helm check it. What
passes here passes both.

Each PATH is a chart (a directory with Chart.yaml, or a .tgz), a YAML or JSON
file, or a directory searched recursively for *.yaml, *.yml and *.json files
(chart directories inside it are skipped). Files may hold many documents:
ApplicationDefinitions found in them define kinds, exactly as for
"chartkind generate" (a definition is paired with the chart named by
spec.release.chart.name; a chart without a definition gets a derived kind,
chart my-db → MyDb), objects of the definitions' API groups (and
apps.chartkind.io) are checked, and every other document (a Deployment, a
Kustomization, …) is ignored.

Each problem is one line on stdout:

    FILE:LINE: KIND NAMESPACE/NAME: FIELD: MESSAGE

and the exit code is 1 when there is any; -o json prints one JSON document
(problems and a summary) instead.

Flags:
`

type validateFlags struct {
	output        string
	ignoreUnknown bool
	group         string
	quiet         bool
}

func runValidate(args []string, stdout, stderr io.Writer) int {
	var f validateFlags
	fset := flag.NewFlagSet("validate", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() { fmt.Fprint(stderr, validateUsage); fset.PrintDefaults() }
	fset.StringVar(&f.output, "o", "text", "output `FORMAT`: text (one line per problem) or json")
	fset.BoolVar(&f.ignoreUnknown, "ignore-unknown", false, "do not report objects whose kind no given chart or definition defines")
	fset.StringVar(&f.group, "group", v1alpha1.DefaultGroup, "API group of kinds derived from charts without a definition")
	fset.BoolVar(&f.quiet, "quiet", false, "do not print warnings")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if f.output != "text" && f.output != "json" {
		fmt.Fprintf(stderr, "chartkind validate: -o must be text or json, not %q\n", f.output)
		return 2
	}
	if fset.NArg() == 0 {
		fmt.Fprintln(stderr, "chartkind validate: at least one PATH is required")
		fset.Usage()
		return 2
	}

	rep := validate(fset.Args(), f, stderr)
	if f.output == "json" {
		out, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", out)
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, p.String())
		}
		for _, e := range rep.Errors {
			fmt.Fprintf(stderr, "error: %s\n", e)
		}
		fmt.Fprintln(stderr, rep.Summary.String())
	}
	if len(rep.Problems) > 0 || len(rep.Errors) > 0 {
		return 1
	}
	return 0
}

// Problem is one reason an object would be refused.
type Problem struct {
	File string `json:"file"`
	// Line is where the field is in the file (or, for a field that is missing,
	// its closest parent); Document counts the file's YAML documents from 1.
	Line      int    `json:"line"`
	Document  int    `json:"document"`
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Field is the path in the object ("spec.persistence.size"); empty for
	// problems with the whole document.
	Field string `json:"field,omitempty"`
	// Type is the API server's error type (FieldValueInvalid, …), or
	// InvalidDocument and UnknownKind for documents that cannot be checked.
	Type    string `json:"type"`
	Message string `json:"message"`
	// Check says who would refuse the object: "crd" (the API server, with the
	// generated CRD), "chart" (the admission webhook, and Helm at install,
	// with the chart's schema), or "document".
	Check string `json:"check"`
}

func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: ", p.File, p.Line)
	if p.Kind != "" {
		b.WriteString(p.Kind + " ")
		if p.Namespace != "" {
			b.WriteString(p.Namespace + "/")
		}
		b.WriteString(p.Name + ": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidateReport is what `chartkind validate -o json` prints.
type ValidateReport struct {
	Problems []Problem `json:"problems"`
	// Errors are inputs that could not be used (a chart that does not load,
	// a definition without its chart, an unreadable file).
	Errors  []string        `json:"errors"`
	Summary ValidateSummary `json:"summary"`
}

// ValidateSummary counts what was checked.
type ValidateSummary struct {
	Files    int `json:"files"`
	Objects  int `json:"objects"`
	Valid    int `json:"valid"`
	Invalid  int `json:"invalid"`
	Unknown  int `json:"unknownKind"`
	Problems int `json:"problems"`
}

func (s ValidateSummary) String() string {
	out := fmt.Sprintf("chartkind validate: %d object(s) in %d file(s): %d valid, %d invalid", s.Objects, s.Files, s.Valid, s.Invalid)
	if s.Unknown > 0 {
		out += fmt.Sprintf(", %d of a kind no given chart or definition defines", s.Unknown)
	}
	if s.Problems > 0 {
		out += fmt.Sprintf("; %d problem(s)", s.Problems)
	}
	return out
}

// kindCheck is everything an object of one kind is checked with: the
// generated CRD as the API server uses it, and the webhook's validator.
type kindCheck struct {
	gvk       schema.GroupVersionKind
	crd       *crd.Checker
	validator *valuescheck.Validator
}

// validate reads every PATH, builds the kinds and checks every object.
func validate(paths []string, f validateFlags, stderr io.Writer) *ValidateReport {
	rep := &ValidateReport{Problems: []Problem{}, Errors: []string{}}
	charts, files, errs := splitPaths(paths)
	for _, err := range errs {
		rep.Errors = append(rep.Errors, err.Error())
	}

	var docs []*yamlDoc
	var defFiles []string
	for _, file := range files {
		ds, err := readDocuments(file)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			continue
		}
		rep.Summary.Files++
		hasDef := false
		for _, d := range ds {
			hasDef = hasDef || (d.gvk.Group == v1alpha1.GroupVersion.Group && d.gvk.Kind == "ApplicationDefinition")
		}
		if hasDef {
			defFiles = append(defFiles, file)
		}
		docs = append(docs, ds...)
	}

	kinds, groups, errs := buildKinds(charts, defFiles, f, stderr)
	for _, err := range errs {
		rep.Errors = append(rep.Errors, err.Error())
	}
	var known []string
	for gk := range kinds {
		known = append(known, gk.Kind)
	}
	sort.Strings(known)

	for _, d := range docs {
		if d.err == nil && !groups[d.gvk.Group] {
			continue // not an application object: a Deployment, a definition, …
		}
		problems, unknown := checkDocument(d, kinds, known, f.ignoreUnknown)
		if d.err == nil {
			rep.Summary.Objects++
			switch {
			case unknown:
				rep.Summary.Unknown++
				if len(problems) == 0 {
					continue
				}
				rep.Summary.Invalid++
			case len(problems) == 0:
				rep.Summary.Valid++
			default:
				rep.Summary.Invalid++
			}
		}
		rep.Problems = append(rep.Problems, problems...)
	}
	rep.Summary.Problems = len(rep.Problems)
	return rep
}

// splitPaths sorts the command line into charts and the YAML files to read,
// walking directories (but not into charts, whose templates are not objects).
func splitPaths(paths []string) (charts, files []string, errs []error) {
	for _, p := range paths {
		st, err := os.Stat(p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("reading %s: %w", p, err))
		case isChartDir(p) || (!st.IsDir() && (strings.HasSuffix(p, ".tgz") || strings.HasSuffix(p, ".tar.gz"))):
			charts = append(charts, p)
		case !st.IsDir():
			files = append(files, p)
		default:
			err := filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if e.IsDir() {
					if path != p && isChartDir(path) {
						return filepath.SkipDir
					}
					return nil
				}
				switch strings.ToLower(filepath.Ext(path)) {
				case ".yaml", ".yml", ".json":
					files = append(files, path)
				}
				return nil
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("reading %s: %w", p, err))
			}
		}
	}
	return charts, files, errs
}

func isChartDir(p string) bool {
	st, err := os.Stat(filepath.Join(p, "Chart.yaml"))
	return err == nil && !st.IsDir()
}

// buildKinds pairs definitions and charts as `chartkind generate` does and
// builds, for each kind, the CRD and the webhook's validator. groups are the
// API groups whose documents are application objects.
func buildKinds(charts, defFiles []string, f validateFlags, stderr io.Writer) (map[schema.GroupKind]*kindCheck, map[string]bool, []error) {
	inputs, errs := collectInputs(append(append([]string(nil), charts...), defFiles...), generateFlags{
		group: f.group, sourceKind: "HelmRepository", sourceName: "charts",
	})
	kinds := map[schema.GroupKind]*kindCheck{}
	groups := map[string]bool{v1alpha1.DefaultGroup: true, f.group: true}
	for _, in := range inputs {
		res, err := generate.CRD(in)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		gk := schema.GroupKind{Group: res.CRD.Spec.Group, Kind: res.CRD.Spec.Names.Kind}
		groups[gk.Group] = true
		if _, dup := kinds[gk]; dup {
			errs = append(errs, fmt.Errorf("%s: kind %s is defined twice", res.SchemaSource, gk))
			continue
		}
		checker, err := crd.NewChecker(res.CRD, crd.Version)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var override []byte
		if s := in.Definition.Spec.Schema; s != nil && len(s.Raw) > 0 {
			override = s.Raw
		}
		v, err := valuescheck.New(in.Chart, override)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", gk.Kind, err))
			continue
		}
		if !f.quiet {
			for _, u := range v.Unchecked() {
				fmt.Fprintf(stderr, "warning: %s: not checked, as Helm would load it at install and chartkind does not fetch schemas: %s\n", gk.Kind, u)
			}
			warnServiceAccount(stderr, in.Definition)
		}
		kinds[gk] = &kindCheck{gvk: gk.WithVersion(crd.Version), crd: checker, validator: v}
	}
	return kinds, groups, errs
}

// yamlDoc is one YAML document of a file.
type yamlDoc struct {
	file  string
	index int // from 1
	line  int // where the document starts
	node  *yamlv3.Node
	obj   map[string]any
	gvk   schema.GroupVersionKind
	err   error
}

// readDocuments splits a file into YAML documents the way kubectl does and
// decodes each as kubectl sends it (YAML to JSON, integers as int64), keeping
// a parse tree for line numbers.
func readDocuments(path string) ([]*yamlDoc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var docs []*yamlDoc
	var buf bytes.Buffer
	start, lineNo := 1, 0
	flush := func() {
		if buf.Len() > 0 {
			docs = append(docs, decodeDocument(path, len(docs)+1, start, bytes.Clone(buf.Bytes())))
		}
		buf.Reset()
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		lineNo++
		if rest, ok := bytes.CutPrefix(line, []byte("---")); ok {
			if t := strings.TrimSpace(string(rest)); t == "" || t[0] == '#' {
				flush()
				start = lineNo + 1
				continue
			}
		}
		buf.Write(line)
	}
	flush()
	// Documents of only comments and blank lines are no documents.
	out := docs[:0]
	for _, d := range docs {
		if d.err != nil || d.obj != nil {
			out = append(out, d)
		}
	}
	return out, nil
}

func decodeDocument(file string, index, start int, raw []byte) *yamlDoc {
	d := &yamlDoc{file: file, index: index, line: start}
	j, err := yaml.YAMLToJSON(raw)
	if err != nil {
		// The parser counts lines from the document's start; say where in
		// the file.
		if m := yamlLineError.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			d.line, err = start+n-1, errors.New(m[2])
		}
		d.err = err
		return d
	}
	var v any
	if err := utiljson.Unmarshal(j, &v); err != nil {
		d.err = err
		return d
	}
	if d.obj, _ = v.(map[string]any); d.obj == nil {
		return d // only comments, or a list or scalar: not a Kubernetes object
	}
	apiVersion, _ := d.obj["apiVersion"].(string)
	kind, _ := d.obj["kind"].(string)
	if gv, err := schema.ParseGroupVersion(apiVersion); err == nil {
		d.gvk = gv.WithKind(kind)
	}
	// The parse tree only serves line numbers; without it, problems point
	// at the start of the document.
	var node yamlv3.Node
	if yamlv3.Unmarshal(raw, &node) == nil && len(node.Content) > 0 {
		d.node = node.Content[0]
		shift(d.node, start-1) // node lines count from the document's start
		d.line = d.node.Line
	}
	return d
}

var yamlLineError = regexp.MustCompile(`yaml: line (\d+): (.*)`)

func shift(n *yamlv3.Node, by int) {
	n.Line += by
	for _, c := range n.Content {
		shift(c, by)
	}
}

// checkDocument checks one application object; unknown says that its kind
// is not among the given ones.
func checkDocument(d *yamlDoc, kinds map[schema.GroupKind]*kindCheck, known []string, ignoreUnknown bool) (problems []Problem, unknown bool) {
	base := Problem{File: d.file, Line: d.line, Document: d.index}
	if d.err != nil {
		base.Type, base.Check = "InvalidDocument", "document"
		base.Message = "cannot be read: " + d.err.Error()
		return []Problem{base}, false
	}
	meta, _ := d.obj["metadata"].(map[string]any)
	base.Kind = d.gvk.Kind
	base.Name, _ = meta["name"].(string)
	base.Namespace, _ = meta["namespace"].(string)

	kc := kinds[d.gvk.GroupKind()]
	if kc == nil {
		if ignoreUnknown {
			return nil, true
		}
		base.Type, base.Check = "UnknownKind", "document"
		base.Message = fmt.Sprintf("no chart or ApplicationDefinition given for kind %s (%s)", d.gvk.Kind, d.gvk.Group)
		if len(known) > 0 {
			base.Message += "; kinds given: " + strings.Join(known, ", ")
		}
		return []Problem{base}, true
	}
	var errs []checkedErr
	add := func(check string, e *field.Error) {
		errs = append(errs, checkedErr{check, e})
	}
	if d.gvk.Version != kc.gvk.Version {
		add("crd", field.NotSupported(field.NewPath("apiVersion"), d.gvk.GroupVersion().String(), []string{kc.gvk.GroupVersion().String()}))
	}
	if base.Name == "" {
		add("crd", field.Required(field.NewPath("metadata", "name"), "every object needs a name"))
	}

	checked := kc.crd.Check(d.obj)
	for _, p := range checked.Pruned {
		add("crd", &field.Error{Type: field.ErrorTypeForbidden, Field: p, Detail: "field not declared in the schema", BadValue: ""})
	}
	for _, e := range checked.Invalid {
		if e.Field == "<nil>" {
			continue // "some validation rules were not checked": the causes are listed
		}
		add("crd", e)
	}
	spec, _ := checked.Spec.(map[string]any)
	seen := map[string]bool{}
	for _, e := range errs {
		seen[e.err.Field+"\x00"+string(e.err.Type)] = true
	}
	// The webhook sees the object as the API server stores it. Where the API
	// server already refuses a field for the same reason, its message is
	// the one users get.
	for _, e := range kc.validator.Validate(spec) {
		if !seen[e.Field+"\x00"+string(e.Type)] {
			add("chart", e)
		}
	}

	for _, e := range errs {
		p := base
		p.Field, p.Type, p.Message, p.Check = e.err.Field, string(e.err.Type), e.err.ErrorBody(), e.check
		p.Line = lineOf(d.node, p.Field, d.line)
		problems = append(problems, p)
	}
	sort.SliceStable(problems, func(i, j int) bool {
		if problems[i].Line != problems[j].Line {
			return problems[i].Line < problems[j].Line
		}
		return problems[i].Field < problems[j].Field
	})
	return problems, false
}

type checkedErr struct {
	check string
	err   *field.Error
}

// lineOf finds the line of a field ("spec.users.a.roles[0]", or with a key in
// brackets: "spec.labels[app.kubernetes.io/name]") in a document; for a field
// that is not there, the line of its closest parent.
func lineOf(n *yamlv3.Node, path string, fallback int) int {
	if n == nil {
		return fallback
	}
	line := fallback
	for _, tok := range fieldTokens(path) {
		switch n.Kind {
		case yamlv3.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case yamlv3.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

// fieldTokens splits a field path as field.Path prints it.
func fieldTokens(path string) []string {
	var out []string
	for len(path) > 0 {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return append(out, path[1:])
			}
			out = append(out, path[1:end])
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			out = append(out, path[:end])
			path = path[end:]
		}
	}
	return out
}
