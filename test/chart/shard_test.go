package chart

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// renderArgs renders the chart's Deployment with values and returns the
// operator's arguments, or the render error.
func renderArgs(t *testing.T, values string) ([]string, error) {
	t.Helper()
	ch := loadChart(t)
	opts := chartutil.ReleaseOptions{Name: "chartkind", Namespace: "chartkind-system", IsInstall: true, Revision: 1}
	vals, err := chartutil.ToRenderValues(ch, parseValues(t, values), opts, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, err
	}
	var args []string
	for name, content := range files {
		if !strings.HasSuffix(name, "/deployment.yaml") {
			continue
		}
		for _, line := range strings.Split(content, "\n") {
			if l := strings.TrimSpace(line); strings.HasPrefix(l, "- --") {
				args = append(args, strings.TrimPrefix(l, "- "))
			}
		}
	}
	return args, nil
}

// The shard values render the operator's sharding flags (docs/sharding.md).
func TestChartShardValues(t *testing.T) {
	has := func(args []string, want string) bool {
		for _, a := range args {
			if a == want {
				return true
			}
		}
		return false
	}
	args, err := renderArgs(t, `{shard: {key: shard1}, webhook: {enabled: false}, crds: {install: false}}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--watch-label-selector=sharding.chartkind.io/key=shard1", "--manage-definitions=false", "--leader-election-id=chartkind-operator-shard1"} {
		if !has(args, want) {
			t.Errorf("shard.key: no %s in %v", want, args)
		}
	}
	args, err = renderArgs(t, `{shard: {exclude: [shard1, shard2]}}`)
	if err != nil {
		t.Fatal(err)
	}
	if !has(args, "--watch-label-selector=sharding.chartkind.io/key notin (shard1,shard2)") || has(args, "--manage-definitions=false") {
		t.Errorf("shard.exclude: %v", args)
	}
	args, err = renderArgs(t, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--watch-label-selector") || strings.HasPrefix(a, "--manage-definitions") {
			t.Errorf("default values render %s", a)
		}
	}
	if _, err := renderArgs(t, `{shard: {key: shard1}}`); err == nil || !strings.Contains(err.Error(), "webhook.enabled=false") {
		t.Errorf("shard.key with the webhook on: %v, want a refusal naming webhook.enabled=false", err)
	}
	if err := validate(loadChart(t), parseValues(t, `{shard: {key: "not a key"}}`)); err == nil {
		t.Error("an invalid shard key accepted")
	}
}
