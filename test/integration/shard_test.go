package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/definition"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
)

// Two operators split the objects of one kind by shard key, as Flux's
// sharded controllers do: "main" manages definitions and mirrors every
// object not labelled sharding.chartkind.io/key=b, "shard-b" mirrors those
// labelled b and nothing else. Each one's requests carry its own user
// agent, so the API server's managedFields say who wrote what.
func TestShards(t *testing.T) {
	const (
		managerMain  = "chartkind-main"
		managerShard = "chartkind-shard-b"
	)
	start := func(agent string, opts operator.Options) *started {
		cfg := rest.CopyConfig(env.Config)
		cfg.UserAgent = agent + "/test"
		opts.ChartsDir = filepath.Join(env.RootDir, "examples", "charts")
		opts.MaxConcurrentReconciles = 4
		logs := &testenv.LogBuffer{}
		opts.Logger = logs.Logger("["+agent+"] ", 1)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s log:\n%s", agent, logs.String())
			}
		})
		opts.MetricsBindAddress = "0"
		op, err := operator.New(cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		s := &started{op: op, cancel: cancel, done: make(chan error, 1)}
		go func() { s.done <- op.Start(ctx) }()
		t.Cleanup(s.stop)
		return s
	}
	start(managerMain, operator.Options{WatchLabelSelector: mirror.ShardLabel + " notin (b)"})
	shard := start(managerShard, operator.Options{WatchLabelSelector: mirror.ShardLabel + "=b", ShardOnly: true})

	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("sharded", "Sharded"))
	testenv.WaitFor(t, timeout, "shard b serving the kind", func(context.Context) error {
		if !shard.op.Serving(def.Name) {
			return fmt.Errorf("not served")
		}
		return nil
	})
	names := definition.Effective(def)

	// key of each object: "" is no label.
	keys := map[string]string{"a0": "a", "a1": "a", "a2": "a", "b0": "b", "b1": "b", "b2": "b", "n0": "", "n1": ""}
	want := func(key string) string {
		if key == "b" {
			return managerShard
		}
		return managerMain
	}
	for name, key := range keys {
		u := newObject(def, ns, name, map[string]any{"extra": "v1"})
		if key != "" {
			u.SetLabels(map[string]string{mirror.ShardLabel: key})
		}
		if err := env.Client.Create(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	// checkWriters: every HelmRelease exists with its object's key and
	// values; the HelmRelease and the object's status were written by the
	// object's shard only.
	checkWriters := func(what string, extra string) {
		t.Helper()
		for name, key := range keys {
			hr := waitRelease(t, ns, names.ReleaseName(name), func(hr *helmv2.HelmRelease) error {
				if hr.Labels[mirror.ShardLabel] != key {
					return fmt.Errorf("shard key label %q, want %q", hr.Labels[mirror.ShardLabel], key)
				}
				if got := values(hr)["extra"]; got != extra {
					return fmt.Errorf("values.extra %v, want %s", got, extra)
				}
				return nil
			})
			if got := chartkindManagers(hr.ManagedFields, ""); len(got) != 1 || got[0] != want(key) {
				t.Errorf("%s: HelmRelease of %s (key %q) written by %v, want only %s", what, name, key, got, want(key))
			}
			u := waitObject(t, def, ns, name, func(u *unstructured.Unstructured) error {
				if c := condition(u, "Ready"); c == nil {
					return fmt.Errorf("no Ready condition")
				}
				return nil
			})
			if got := chartkindManagers(u.GetManagedFields(), "status"); len(got) != 1 || got[0] != want(key) {
				t.Errorf("%s: status of %s (key %q) written by %v, want only %s", what, name, key, got, want(key))
			}
		}
	}
	checkWriters("after create", "v1")

	// Ready reaches every object through its own shard.
	for name := range keys {
		setReleaseStatus(t, ns, names.ReleaseName(name), func(hr *helmv2.HelmRelease) {
			hr.Status.ObservedGeneration = hr.Generation
			c := readyCondition(metav1.ConditionTrue, "InstallSucceeded", "installed")
			c.ObservedGeneration = hr.Generation
			apimeta.SetStatusCondition(&hr.Status.Conditions, c)
		})
	}
	for name := range keys {
		waitObject(t, def, ns, name, func(u *unstructured.Unstructured) error {
			if c := condition(u, "Ready"); c == nil || c["status"] != "True" {
				return fmt.Errorf("not Ready: %v", c)
			}
			return nil
		})
	}

	// Keys change: a0 moves to b, b0 to a, b1 loses its key (main's).
	moves := map[string]string{"a0": "b", "b0": "a", "b1": ""}
	for name, key := range moves {
		u := mustGetObject(t, def, ns, name)
		l := u.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		if key == "" {
			delete(l, mirror.ShardLabel)
		} else {
			l[mirror.ShardLabel] = key
		}
		u.SetLabels(l)
		if err := env.Client.Update(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		keys[name] = key
	}
	for name, key := range moves {
		waitRelease(t, ns, names.ReleaseName(name), func(hr *helmv2.HelmRelease) error {
			if hr.Labels[mirror.ShardLabel] != key {
				return fmt.Errorf("shard key label %q, want %q", hr.Labels[mirror.ShardLabel], key)
			}
			return nil
		})
	}
	// Every object's spec changes: each change is mirrored, by the object's
	// shard (the values field is the last writer's).
	for name := range keys {
		u := mustGetObject(t, def, ns, name)
		u.Object["spec"] = map[string]any{"extra": "v2"}
		if err := env.Client.Update(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	for name, key := range keys {
		hr := waitRelease(t, ns, names.ReleaseName(name), func(hr *helmv2.HelmRelease) error {
			if got := values(hr)["extra"]; got != "v2" {
				return fmt.Errorf("values.extra %v, want v2", got)
			}
			return nil
		})
		if got := fieldOwner(hr.ManagedFields, "f:extra"); got != want(key) {
			t.Errorf("after the key change: values of %s (key %q) written by %s, want %s", name, key, got, want(key))
		}
		if _, moved := moves[name]; !moved {
			if got := chartkindManagers(hr.ManagedFields, ""); len(got) != 1 {
				t.Errorf("HelmRelease of %s (key %q, not moved) written by %v, want only %s", name, key, got, want(key))
			}
		}
	}
	// A deletion is mirrored by the shard of the object: b2's HelmRelease goes.
	if err := env.Client.Delete(context.Background(), mustGetObject(t, def, ns, "b2")); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "HelmRelease of b2", func(ctx context.Context) error {
		_, err := getRelease(ctx, ns, names.ReleaseName("b2"))
		return err
	})
	delete(keys, "b2")

	// Nothing left behind: every HelmRelease of the kind has its object,
	// and at rest neither operator writes.
	var list helmv2.HelmReleaseList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, hr := range list.Items {
		got = append(got, hr.Name)
	}
	var wantNames []string
	for name := range keys {
		wantNames = append(wantNames, names.ReleaseName(name))
	}
	sort.Strings(got)
	sort.Strings(wantNames)
	if strings.Join(got, ",") != strings.Join(wantNames, ",") {
		t.Errorf("HelmReleases %v, want %v", got, wantNames)
	}
	// The definition's counts are recounted at most every 2 s: let the last
	// recount land first.
	time.Sleep(5 * time.Second)
	assertNoWrites(t, def, ns, 3*time.Second, "two shards at rest", nil)

	// With deletionPolicy Delete, the definition's deletion takes the CRD and
	// every HelmRelease of the kind, in both shards.
	updateDefinition(t, def.Name, func(d *v1alpha1.ApplicationDefinition) { d.Spec.DeletionPolicy = v1alpha1.DeletionDelete })
	deleteDefinition(t, def.Name)
	testenv.WaitFor(t, timeout, "every HelmRelease of the kind deleted", func(ctx context.Context) error {
		var list helmv2.HelmReleaseList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var left []string
		for _, hr := range list.Items {
			left = append(left, hr.Name+" (key "+hr.Labels[mirror.ShardLabel]+")")
		}
		if len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		return nil
	})
}

// chartkindManagers lists the chartkind-* field managers of entries, of
// the given subresource ("" for the object itself).
func chartkindManagers(entries []metav1.ManagedFieldsEntry, subresource string) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Manager, "chartkind-") && e.Subresource == subresource && !seen[e.Manager] {
			seen[e.Manager] = true
			out = append(out, e.Manager)
		}
	}
	sort.Strings(out)
	return out
}

// fieldOwner is the manager whose fields include the given field (the
// last to change it).
func fieldOwner(entries []metav1.ManagedFieldsEntry, field string) string {
	for _, e := range entries {
		if e.FieldsV1 != nil && e.Subresource == "" && strings.Contains(string(e.FieldsV1.Raw), `"`+field+`"`) {
			return e.Manager
		}
	}
	return ""
}
