package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/testenv"
	"github.com/chartkind/chartkind/internal/webhook"
)

// The webhook Service sends requests to every replica, but only the leader
// runs the definition steps. A replica that is not the leader loads a kind's
// chart schema itself, read-only, on its first request, and gives the same
// verdict as the leader.
func TestWebhookOnReplicaThatIsNotLeader(t *testing.T) {
	leaseNS := newNamespace(t)
	lead := selfManaged(t, "chartkind-wh-leader")
	leader := startWebhookOperator(t, env.Config, env.Client, lead)
	ns := newNamespace(t)
	pgDef := widgetDefinition("whfollowerpg", "WhFollowerPg")
	pgDef.Spec.Schema = nil
	pgDef.Spec.Release.Chart.Name, pgDef.Spec.Release.Chart.Version = "postgres", ">=0.1.0"
	pgDef.Spec.DeletionPolicy = v1alpha1.DeletionDelete

	// Leader election on for both replicas; the first one leads.
	leader.stop()
	leader.opts.LeaderElection, leader.opts.LeaderElectionNamespace, leader.opts.LeaderElectionID = true, leaseNS, "chartkind-follower-test"
	leader.start()
	def := createDefinition(t, pgDef)

	follow := selfManaged(t, "chartkind-wh-follower")
	follow.SecretNamespace = lead.SecretNamespace // replicas share the certificate
	follower := startWebhookOperator(t, env.Config, env.Client, follow)
	follower.stop()
	follower.opts.LeaderElection, follower.opts.LeaderElectionNamespace, follower.opts.LeaderElectionID = true, leaseNS, "chartkind-follower-test"
	follower.start()

	secret := &corev1.Secret{}
	testenv.WaitFor(t, timeout, "the shared certificate", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: lead.SecretNamespace, Name: lead.SecretName}, secret); err != nil {
			return err
		}
		if len(secret.Data[webhook.KeyCABundle]) == 0 {
			return fmt.Errorf("no CA yet")
		}
		return nil
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(secret.Data[webhook.KeyCABundle])
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}

	review := func(spec map[string]any) (*admissionv1.AdmissionResponse, error) {
		obj := newObject(def, ns, "direct", spec)
		raw, err := obj.MarshalJSON()
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID:       "follower-test",
				Kind:      metav1.GroupVersionKind{Group: "apps.chartkind.io", Version: "v1alpha1", Kind: def.Status.Names.Kind},
				Resource:  metav1.GroupVersionResource{Group: "apps.chartkind.io", Version: "v1alpha1", Resource: def.Status.Names.Plural},
				Operation: admissionv1.Create, Namespace: ns, Name: "direct",
				Object: runtime.RawExtension{Raw: raw},
			},
		})
		if err != nil {
			return nil, err
		}
		resp, err := httpc.Post(follow.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, err
		}
		if out.Response == nil {
			return nil, fmt.Errorf("no response")
		}
		return out.Response, nil
	}

	// The follower never leads while the leader runs, so its definition
	// controller never calls KindServed: without the on-demand load it
	// admits everything with a warning (checked by removing it).
	var resp *admissionv1.AdmissionResponse
	testenv.WaitFor(t, timeout, "the follower's verdict", func(ctx context.Context) error {
		r, err := review(map[string]any{"parameters": map[string]any{"max_connections": []any{int64(1)}}})
		if err != nil {
			return err
		}
		if r.Allowed {
			return fmt.Errorf("allowed (warnings %v)", r.Warnings)
		}
		resp = r
		return nil
	})
	if resp.Result == nil || !strings.Contains(resp.Result.Message, "spec.parameters.max_connections") {
		t.Errorf("follower denial: %+v", resp.Result)
	}
	ok, err := review(map[string]any{"parameters": map[string]any{"max_connections": int64(10)}})
	if err != nil || !ok.Allowed || len(ok.Warnings) != 0 {
		t.Errorf("valid spec on the follower: %+v %v", ok, err)
	}
}
