package integration

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// TestObjectNamesRefusedByTheAPIServer: the generated CRD's name rules make
// the API server itself refuse, at create time, an object whose name its Helm
// release could not take (this environment runs no admission webhook): one
// character over the kind's limit, and a name with a dot; a name exactly at
// the limit is accepted.
func TestObjectNamesRefusedByTheAPIServer(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("namedwidget", "NamedWidget"))
	// prefix "namedwidget-" (12 characters): names of at most 41.
	atLimit := strings.Repeat("a", 53-len("namedwidget-"))

	err := env.Client.Create(ctxT(t), newObject(def, ns, atLimit+"b", map[string]any{}))
	want := `NamedWidget names may have at most 41 characters: the Helm release name is "namedwidget-" + the name, at most 53`
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.name") || !strings.Contains(err.Error(), want) {
		t.Fatalf("name of %d characters: got %v, want Invalid with %q", len(atLimit)+1, err, want)
	}
	t.Logf("refused: %v", err)

	err = env.Client.Create(ctxT(t), newObject(def, ns, "a.b", map[string]any{}))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "NamedWidget names may not contain dots") {
		t.Fatalf("dotted name: got %v, want Invalid", err)
	}

	u := createObject(t, def, ns, atLimit, map[string]any{"replicas": int64(1)})
	// An update of an accepted object passes the rules (optionalOldSelf).
	u.SetLabels(map[string]string{"a": "b"})
	if err := env.Client.Update(ctxT(t), u); err != nil {
		t.Fatalf("updating %s: %v", atLimit, err)
	}
}
