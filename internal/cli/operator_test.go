package cli

import (
	"bytes"
	"strings"
	"testing"
)

// Shard flags are checked before anything connects to a cluster.
func TestOperatorShardFlags(t *testing.T) {
	for _, c := range []struct {
		args    []string
		mention string
	}{
		{[]string{"--manage-definitions=false", "--webhook"}, "--webhook needs --manage-definitions"},
		{[]string{"--watch-label-selector", "sharding.chartkind.io/key in (a"}, "--watch-label-selector"},
		{[]string{"--watch-label-selector", "team=a"}, "only the shard key sharding.chartkind.io/key may be selected on, not team"},
		{[]string{"--default-service-account", "Not_A_Name"}, "--default-service-account=\"Not_A_Name\""},
		{[]string{"--memory-limit", "lots"}, "--memory-limit \"lots\""},
	} {
		var out, errOut bytes.Buffer
		code := runOperator(c.args, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), c.mention) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %q", c.args, code, errOut.String(), c.mention)
		}
	}
}
