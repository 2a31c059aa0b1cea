// Package rbac checks chartkind's RBAC on a real control plane that runs
// kube-controller-manager, whose clusterrole-aggregation controller folds the
// per-kind roles into the built-in admin, edit and view roles as in any
// cluster. The operator runs in-process, impersonating its ServiceAccount
// bound only to the RBAC in config/rbac, so a missing permission fails these
// tests, and RBAC's escalation prevention applies to the roles it creates.
package rbac

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
)

var env *testenv.Env

// The operator's identity, as config/rbac names it.
const (
	operatorNamespace      = "chartkind-system"
	operatorServiceAccount = "chartkind-operator"
	operatorUser           = "system:serviceaccount:" + operatorNamespace + ":" + operatorServiceAccount
)

const timeout = 60 * time.Second

// clientLog collects what client-go logs through klog (event sink and
// leader election errors), which is where a forbidden event write shows.
var clientLog = &testenv.LogBuffer{}

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	klog.SetLogger(clientLog.Logger("[klog] ", 4))
	e, stop, err := testenv.StartMain(testenv.Options{
		ControllerManager: true,
		AddToScheme:       []func(*runtime.Scheme) error{v1alpha1.AddToScheme},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env = e
	code := 1
	if err := installOperatorRBAC(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	if code != 0 {
		env.DumpLogs(os.Stderr)
	}
	stop()
	os.Exit(code)
}

// installOperatorRBAC creates the operator's namespace and everything
// config/rbac/kustomization.yaml lists, exactly as written there.
func installOperatorRBAC(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}
	if err := env.Client.Create(ctx, ns); err != nil {
		return err
	}
	dir := filepath.Join(env.RootDir, "config", "rbac")
	for _, f := range []string{"service_account.yaml", "role.yaml", "role_binding.yaml", "leader_election_role.yaml"} {
		objs, err := readManifests(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		for _, o := range objs {
			if o.GetNamespace() == "" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" {
				o.SetNamespace(operatorNamespace)
			}
			if err := env.Client.Create(ctx, o); err != nil {
				return fmt.Errorf("creating %s %s from %s: %w", o.GetKind(), o.GetName(), f, err)
			}
		}
	}
	return nil
}

// readManifests decodes every object of a multi-document YAML file.
func readManifests(path string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// startOperator runs the operator in-process as its ServiceAccount, with
// leader election in its namespace, until the test ends. Call it before
// creating definitions, so that their cleanup (which needs the operator to
// remove finalizers) runs first. When the test ends it fails the test if the
// operator or client-go logged a refused request.
func startOperator(t *testing.T, with ...func(*operator.Options)) {
	t.Helper()
	logs := &testenv.LogBuffer{}
	log := logs.Logger("", 1)
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	opts := operator.Options{
		ChartsDir:               filepath.Join(env.RootDir, "examples", "charts"),
		MetricsBindAddress:      "0",
		LeaderElection:          true,
		LeaderElectionNamespace: operatorNamespace,
		LeaderElectionID:        "chartkind-rbac-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		Logger:                  log,
	}
	for _, f := range with {
		f(&opts)
	}
	op, err := operator.New(cfg, opts)
	if err != nil {
		t.Fatalf("operator.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	klogStart := len(clientLog.String())
	go func() { done <- op.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("operator stopped with error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("operator did not stop within 30s")
		}
		all := logs.String() + clientLog.String()[klogStart:]
		if strings.Contains(strings.ToLower(all), "forbidden") {
			t.Errorf("a request of the operator was refused (forbidden): its RBAC is not sufficient")
		}
		if t.Failed() {
			t.Logf("operator log:\n%s", all)
		}
	})
}

// newNamespace creates a namespace for the test and deletes it afterwards
// (kube-controller-manager's namespace controller empties it).
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rbac-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// createDefinition creates def, deletes it when the test ends, and waits
// until its kind is served.
func createDefinition(t *testing.T, def *v1alpha1.ApplicationDefinition) *v1alpha1.ApplicationDefinition {
	t.Helper()
	if err := env.Client.Create(context.Background(), def); err != nil {
		t.Fatalf("creating definition %s: %v", def.Name, err)
	}
	t.Cleanup(func() { deleteDefinition(t, def.Name) })
	got := &v1alpha1.ApplicationDefinition{}
	testenv.WaitFor(t, timeout, "definition "+def.Name+" to be served", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, types.NamespacedName{Name: def.Name}, got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, "Ready")
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != got.Generation {
			return fmt.Errorf("Ready condition %+v", c)
		}
		return nil
	})
	return got
}

// deleteDefinition deletes the definition and waits until the operator has
// finalized it.
func deleteDefinition(t *testing.T, name string) {
	t.Helper()
	def := &v1alpha1.ApplicationDefinition{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Delete(context.Background(), def); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting definition %s: %v", name, err)
		return
	}
	// The operator removes its finalizer once the kind is stopped.
	env.WaitForDeleted(t, def, timeout)
}

// bind binds user to the built-in ClusterRole role in namespace ns.
func bind(t *testing.T, ns, user, role string) {
	t.Helper()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user + "-" + role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := env.Client.Create(context.Background(), rb); err != nil {
		t.Fatal(err)
	}
}

// access is one question to the API server's authorizer.
type access struct {
	verb, group, resource, subresource string
}

func (a access) String() string {
	s := a.verb + " " + a.resource
	if a.subresource != "" {
		s += "/" + a.subresource
	}
	if a.group != "" {
		s += "." + a.group
	}
	return s
}

// allowed asks the API server, with a SubjectAccessReview, whether user may
// do a in namespace ns.
func allowed(ctx context.Context, user, ns string, a access) (bool, error) {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource,
		},
	}}
	if err := env.Client.Create(ctx, sar); err != nil {
		return false, fmt.Errorf("SubjectAccessReview for %s %s: %w", user, a, err)
	}
	return sar.Status.Allowed, nil
}
