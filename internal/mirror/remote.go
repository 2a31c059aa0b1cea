package mirror

import (
	"context"
	"fmt"
	"sync"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	corev1 "k8s.io/api/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Releases installed into another cluster (spec.kubeConfig) are read there,
// with the kubeconfig helm-controller uses, never with chartkind's own
// credentials and never from the local cluster (where objects of the same
// names would be someone else's).

// remoteTimeout bounds each request to a remote cluster, so that one
// unreachable cluster does not hold up the reconcile of others' objects.
const remoteTimeout = 10 * time.Second

// remoteClients keeps one client per kubeconfig Secret revision.
type remoteClients struct {
	mu      sync.Mutex
	clients map[string]remoteClient // by namespace/name of the Secret
}

type remoteClient struct {
	resourceVersion string
	reader          client.Reader
}

// remoteReader returns a reader for the cluster hr installs into, from its
// kubeConfig Secret (read with the operator's live reader, as helm-controller
// reads it, in the HelmRelease's namespace).
func (m *Mirror) remoteReader(ctx context.Context, hr *helmv2.HelmRelease) (client.Reader, error) {
	ref := hr.Spec.KubeConfig
	if ref.SecretRef == nil {
		return nil, fmt.Errorf("spec.kubeConfig.configMapRef (a cloud provider's workload identity) is not read by chartkind")
	}
	key := ref.SecretRef.Key
	var sec corev1.Secret
	if err := m.insight.Reader.Get(ctx, client.ObjectKey{Namespace: hr.Namespace, Name: ref.SecretRef.Name}, &sec); err != nil {
		return nil, fmt.Errorf("reading kubeconfig Secret %s/%s: %w", hr.Namespace, ref.SecretRef.Name, err)
	}
	id := hr.Namespace + "/" + ref.SecretRef.Name + "/" + key
	r := &m.observed.remotes
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[id]; ok && c.resourceVersion == sec.ResourceVersion {
		return c.reader, nil
	}
	data, err := kubeconfigData(&sec, key)
	if err != nil {
		return nil, err
	}
	c, err := remoteClientFor(data)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s/%s: %w", hr.Namespace, ref.SecretRef.Name, err)
	}
	if r.clients == nil {
		r.clients = map[string]remoteClient{}
	}
	r.clients[id] = remoteClient{resourceVersion: sec.ResourceVersion, reader: c}
	return c, nil
}

// kubeconfigData is the kubeconfig in sec: key, or helm-controller's
// defaults "value" then "value.yaml".
func kubeconfigData(sec *corev1.Secret, key string) ([]byte, error) {
	if key != "" {
		if b, ok := sec.Data[key]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("kubeconfig Secret %s/%s has no key %q", sec.Namespace, sec.Name, key)
	}
	for _, k := range []string{"value", "value.yaml"} {
		if b, ok := sec.Data[k]; ok {
			return b, nil
		}
	}
	return nil, fmt.Errorf("kubeconfig Secret %s/%s has neither key value nor value.yaml", sec.Namespace, sec.Name)
}

// remoteClientFor builds a client from a self-contained kubeconfig. Anything
// that would make chartkind use credentials of its own machine is refused:
// exec and auth-provider plugins, token and certificate files, and files
// named for the cluster's CA (helm-controller refuses exec plugins too).
func remoteClientFor(data []byte) (client.Client, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("not a kubeconfig: %w", err)
	}
	if err := selfContained(cfg); err != nil {
		return nil, err
	}
	rest, err := clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	rest.Timeout = remoteTimeout
	rest.QPS, rest.Burst = 5, 10
	return client.New(rest, client.Options{Scheme: clientgoscheme.Scheme})
}

// selfContained refuses what the kubeconfig's current context uses from
// outside the kubeconfig itself.
func selfContained(cfg *clientcmdapi.Config) error {
	ctxName := cfg.CurrentContext
	kctx, ok := cfg.Contexts[ctxName]
	if !ok {
		return fmt.Errorf("kubeconfig has no current context")
	}
	if c, ok := cfg.Clusters[kctx.Cluster]; ok && c.CertificateAuthority != "" {
		return fmt.Errorf("kubeconfig cluster %q names a CA file (%s): only inline certificate-authority-data is used", kctx.Cluster, c.CertificateAuthority)
	}
	a, ok := cfg.AuthInfos[kctx.AuthInfo]
	if !ok {
		return nil
	}
	switch {
	case a.Exec != nil:
		return fmt.Errorf("kubeconfig user %q runs an exec plugin: refused, chartkind only uses credentials inside the kubeconfig", kctx.AuthInfo)
	case a.AuthProvider != nil:
		return fmt.Errorf("kubeconfig user %q uses an auth provider: refused, chartkind only uses credentials inside the kubeconfig", kctx.AuthInfo)
	case a.TokenFile != "" || a.ClientCertificate != "" || a.ClientKey != "":
		return fmt.Errorf("kubeconfig user %q names credential files: refused, chartkind only uses credentials inside the kubeconfig", kctx.AuthInfo)
	}
	return nil
}
