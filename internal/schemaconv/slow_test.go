package schemaconv

import (
	"fmt"
	"strings"
	"testing"
)

// TestExplodingSchemas: mutually recursive $refs whose inlined form has
// millions of nodes, and very deep nesting, convert into valid CRDs of bounded
// size. (Before the node-count cap the refs case took a minute; the package's
// test timeout catches a regression, and BenchmarkConvertLargest measures speed.)
func TestExplodingSchemas(t *testing.T) {
	var defs []string
	for i := 0; i < 10; i++ {
		next := fmt.Sprintf("d%d", (i+1)%10)
		defs = append(defs, fmt.Sprintf(`"d%d":{"type":"object","properties":{"x":{"$ref":"#/$defs/%s"},"y":{"$ref":"#/$defs/%s"}}}`, i, next, next))
	}
	refs := `{"$defs":{` + strings.Join(defs, ",") + `},"$ref":"#/$defs/d0"}`
	deep := strings.Repeat(`{"properties":{"a":`, 200) + `{}` + strings.Repeat(`}}`, 200)
	for name, s := range map[string]string{"refs": refs, "deep": deep} {
		res, _ := convertOK(t, s, "", Options{})
		if size := jsonSize(res.Schema); size > defaultMaxBytes {
			t.Errorf("%s: %d bytes", name, size)
		}
		if !hasWarning(res, "accept") {
			t.Errorf("%s: no warning about the cut: %q", name, res.Warnings)
		}
	}
}
