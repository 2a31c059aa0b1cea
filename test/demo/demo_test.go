package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the README's `make demo` end to end (with -exit instead of
// waiting for Ctrl-C) and checks what a person would read: the definitions
// Ready, both applications Ready with their chart version, the HelmReleases
// installed by the real helm-controller, and the chart's ConfigMap rendered
// from the application's spec.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, true, 2*time.Minute); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	for _, want := range []string{
		"applicationdefinition.chartkind.io/postgres condition met",
		"postgres.apps.chartkind.io/orders condition met",
		"redis.apps.chartkind.io/sessions condition met",
		"Helm install succeeded for release default/postgres-orders.v1 with chart postgres@0.1.0",
		`"replicas":"3"`,
		`"version":"17"`,
		`The Postgres "broken" is invalid: spec.parameters.max_connections: Invalid value`,
		"export KUBECONFIG=",
		"stopping every process",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// The real chart, when ../shared/real-charts is beside the checkout (it is
	// on the development and CI machines; TestRealChartsWithWorkloads in
	// test/e2e fails without it).
	if _, err := os.Stat("../../../shared/real-charts/bitnami-nginx/Chart.yaml"); err == nil {
		for _, want := range []string{
			"nginx.apps.chartkind.io/web condition met",
			"nginx-web.default.svc:80",
			"secret nginx-web-tls: [\"ca.crt\",\"tls.crt\",\"tls.key\"]",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("demo output lacks %q", want)
			}
		}
		if n := strings.Count(out.String(), "1/1     Running"); n != 2 {
			t.Errorf("demo shows %d nginx pods Running, want 2", n)
		}
	}
	// kubectl get postgreses: NAME READY AGE VERSION, then the definition's columns.
	var header, row string
	lines := strings.Split(out.String(), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "$ kubectl get postgreses") && i+2 < len(lines) {
			header, row = lines[i+1], lines[i+2]
		}
	}
	if f := strings.Fields(header); len(f) < 4 || strings.Join(f[:4], " ") != "NAME READY AGE VERSION" {
		t.Errorf("kubectl get postgreses header = %q", header)
	}
	if f := strings.Fields(row); len(f) < 4 || f[0] != "orders" || f[1] != "True" || f[3] != "0.1.0" {
		t.Errorf("kubectl get postgreses row = %q", row)
	}
}
