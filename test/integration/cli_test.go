package integration

import (
	"bytes"
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
