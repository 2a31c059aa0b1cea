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
	} {
		var out, errOut bytes.Buffer
		code := runOperator(c.args, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), c.mention) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %q", c.args, code, errOut.String(), c.mention)
		}
	}
}
