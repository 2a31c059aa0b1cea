package integration

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chartkind/chartkind/internal/cli"
)

// `chartkind operator` validates its flags before connecting anywhere.
func TestOperatorCommandFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := cli.Main([]string{"operator", "-h"}, &out, &errOut); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, flag := range []string{"-kubeconfig", "-metrics-bind-address", "-health-probe-bind-address", "-leader-elect", "-charts-dir", "-log-level", "-log-format", "-max-concurrent-reconciles"} {
		if !strings.Contains(errOut.String(), flag) {
			t.Errorf("usage does not mention %s", flag)
		}
	}
	for _, args := range [][]string{{"--log-format", "xml"}, {"--log-level", "loud"}, {"extra-arg"}} {
		errOut.Reset()
		if code := cli.Main(append([]string{"operator"}, args...), &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
	errOut.Reset()
	if code := cli.Main([]string{"operator", "--kubeconfig", "/does/not/exist"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "/does/not/exist") {
		t.Errorf("missing kubeconfig: exit %d: %s", code, errOut.String())
	}
}

// `kubectl apply -k config/default` is accepted by the API server, and the
// operator's flags name the webhook Service and certificate Secret it installs,
// with the namespaced Role for that Secret bound: a configuration created by the
// operator must never point at a Service that does not exist.
func TestKustomizeInstall(t *testing.T) {
	out := kubectl(t, "apply", "--server-side", "-k", filepath.Join(env.RootDir, "config", "default"))
	for _, want := range []string{"service/chartkind-webhook", "deployment.apps/chartkind-operator", "rolebinding.rbac.authorization.k8s.io/chartkind-operator", "role.rbac.authorization.k8s.io/chartkind-operator"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -k config/default did not apply %s:\n%s", want, out)
		}
	}
	args := kubectl(t, "get", "deployment", "-n", "chartkind-system", "chartkind-operator", "-o", "jsonpath={.spec.template.spec.containers[0].args}")
	for _, want := range []string{"--webhook-service=chartkind-system/chartkind-webhook", "--webhook-secret=chartkind-system/chartkind-webhook-tls"} {
		if !strings.Contains(args, want) {
			t.Errorf("operator args %s lack %s", args, want)
		}
	}
	port := kubectl(t, "get", "service", "-n", "chartkind-system", "chartkind-webhook", "-o", "jsonpath={.spec.ports[0].targetPort}")
	ports := kubectl(t, "get", "deployment", "-n", "chartkind-system", "chartkind-operator", "-o", "jsonpath={.spec.template.spec.containers[0].ports[*].name}")
	if !strings.Contains(ports, port) {
		t.Errorf("webhook Service targets port %q, the container has %s", port, ports)
	}
}
