package insight

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// Access is what a user needs to connect to the release: its Services,
// Ingresses, Secrets (key names only) and rendered release notes, as selected
// by the definition's access rules.
type Access struct {
	// Endpoint is one line for `kubectl get -o wide`: the first external
	// address of a Service (host:port), else the first Ingress URL, else
	// "<svc>.<ns>.svc:<port>" of the first Service (Services sorted by name).
	Endpoint string
	// Services sorted by name, then namespace, at most 32.
	Services []Service
	// Ingresses sorted by name, then namespace, at most 32.
	Ingresses []Ingress
	// Secrets sorted by name, then namespace, at most 32.
	Secrets []Secret
	// Notes is the rendered NOTES.txt of the latest release, bounded by
	// Options.MaxNotes; empty when not wanted or not recorded.
	Notes string
	// Omitted lists what could have been shown but could not be read, e.g.
	// "Secret shop/db: forbidden", so an empty list is not mistaken for
	// "the release has no Secrets".
	Omitted []string
}

// Bounds of Access, so a release of hundreds of objects does not make the
// application's status large: lists beyond maxAccessItems are cut and the
// cut is said in Omitted; the lists inside an item are cut silently.
const (
	maxAccessItems = 32
	maxPorts       = 16
	maxURLs        = 16
	maxKeys        = 64
	maxExternal    = 8
)

// Service is how to reach one Service of the release.
type Service struct {
	// Name and Namespace of the Service.
	Name, Namespace string
	// Type is spec.type: ClusterIP, NodePort, LoadBalancer or ExternalName.
	Type string
	// ClusterIP is spec.clusterIP, "None" for a headless Service.
	ClusterIP string
	// Ports in spec order (the order the chart chose, the first is the main
	// one), at most 16.
	Ports []Port
	// External are the addresses reachable from outside the cluster: load
	// balancer ingress IPs and hostnames and spec.externalIPs, sorted, at most 8.
	External []string
	// DNS is the in-cluster name "<name>.<ns>.svc".
	DNS string
}

// Port is one port of a Service.
type Port struct {
	// Name of the port, may be empty for a single-port Service.
	Name string
	// Port is the Service port.
	Port int32
	// Protocol is TCP, UDP or SCTP.
	Protocol string
	// NodePort is the port opened on every node (NodePort and LoadBalancer), or 0.
	NodePort int32
	// TargetPort is the pod port, a number or a named port.
	TargetPort string
}

// Ingress is how to reach one Ingress of the release.
type Ingress struct {
	// Name and Namespace of the Ingress.
	Name, Namespace string
	// URLs are scheme://host/path for each rule path, in spec order; https
	// when the host is covered by spec.tls. Rules without host use the load
	// balancer address. At most 16.
	URLs []string
	// Class is spec.ingressClassName, else the kubernetes.io/ingress.class annotation.
	Class string
}

// Secret names one Secret of the release and its keys, never its values:
// users need to know what to mount or read, and status is world-readable
// compared to Secrets.
type Secret struct {
	// Name and Namespace of the Secret.
	Name, Namespace string
	// Type is the Secret type, e.g. kubernetes.io/tls.
	Type string
	// Keys are the sorted key names of data and stringData, at most 64.
	Keys []string
}

// accessKind returns the access rule kind of ref, or "" when access rules do
// not apply to it (an Ingress of another group, a knative Service...).
func accessKind(ref Ref) string {
	switch ref.Group + "/" + ref.Kind {
	case "/Service", "/Secret", "networking.k8s.io/Ingress":
		return ref.Kind
	}
	return ""
}

type accessRules struct {
	all   bool
	rules []accessRule
}

type accessRule struct {
	kind, name string
	sel        labels.Selector // nil: any labels
}

func compileRules(rs []v1alpha1.AccessRule) (accessRules, error) {
	if len(rs) == 0 {
		return accessRules{all: true}, nil
	}
	out := accessRules{rules: make([]accessRule, 0, len(rs))}
	for i, r := range rs {
		ar := accessRule{kind: r.Kind, name: r.Name}
		if r.Selector != nil {
			sel, err := metav1.LabelSelectorAsSelector(r.Selector)
			if err != nil {
				return accessRules{}, fmt.Errorf("access rule %d (%s): selector: %w", i, r.Kind, err)
			}
			ar.sel = sel
		}
		out.rules = append(out.rules, ar)
	}
	return out, nil
}

// match says whether an object of this access kind is shown.
func (a accessRules) match(kind, name string, lbls map[string]string) bool {
	if a.all {
		return true
	}
	for _, r := range a.rules {
		if r.kind == kind && (r.name == "" || r.name == name) && (r.sel == nil || r.sel.Matches(labels.Set(lbls))) {
			return true
		}
	}
	return false
}

// mayMatch is match for an object whose labels are unknown (it could not be
// read): true when some rule could select it.
func (a accessRules) mayMatch(kind, name string) bool {
	if a.all {
		return true
	}
	for _, r := range a.rules {
		if r.kind == kind && (r.name == "" || r.name == name) {
			return true
		}
	}
	return false
}

// mayShow says whether any object of the kind can be shown.
func (a accessRules) mayShow(kind string) bool {
	if a.all {
		return true
	}
	return slices.ContainsFunc(a.rules, func(r accessRule) bool { return r.kind == kind })
}

// add records one selected object.
func (a *Access) add(kind string, u *unstructured.Unstructured) error {
	switch kind {
	case "Service":
		var svc corev1.Service
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &svc); err != nil {
			return fmt.Errorf("decoding Service: %w", err)
		}
		a.Services = append(a.Services, service(&svc))
	case "Ingress":
		var ing networkingv1.Ingress
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ing); err != nil {
			return fmt.Errorf("decoding Ingress: %w", err)
		}
		a.Ingresses = append(a.Ingresses, ingress(&ing))
	case "Secret":
		a.Secrets = append(a.Secrets, secret(u))
	}
	return nil
}

func service(svc *corev1.Service) Service {
	s := Service{
		Name:      svc.Name,
		Namespace: svc.Namespace,
		Type:      string(svc.Spec.Type),
		ClusterIP: svc.Spec.ClusterIP,
		DNS:       svc.Name + "." + svc.Namespace + ".svc",
	}
	if s.Type == "" {
		s.Type = string(corev1.ServiceTypeClusterIP)
	}
	for _, p := range svc.Spec.Ports {
		port := Port{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol), NodePort: p.NodePort}
		if port.Protocol == "" {
			port.Protocol = string(corev1.ProtocolTCP)
		}
		if p.TargetPort.IntVal != 0 || p.TargetPort.StrVal != "" {
			port.TargetPort = p.TargetPort.String()
		}
		s.Ports = append(s.Ports, port)
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			s.External = append(s.External, in.IP)
		}
		if in.Hostname != "" {
			s.External = append(s.External, in.Hostname)
		}
	}
	s.External = append(s.External, svc.Spec.ExternalIPs...)
	slices.Sort(s.External)
	s.External = capList(slices.Compact(s.External), maxExternal)
	s.Ports = capList(s.Ports, maxPorts)
	return s
}

func ingress(ing *networkingv1.Ingress) Ingress {
	out := Ingress{Name: ing.Name, Namespace: ing.Namespace}
	if ing.Spec.IngressClassName != nil {
		out.Class = *ing.Spec.IngressClassName
	} else {
		out.Class = ing.Annotations["kubernetes.io/ingress.class"]
	}
	var lb string
	for _, in := range ing.Status.LoadBalancer.Ingress {
		if lb = cmp.Or(in.Hostname, in.IP); lb != "" {
			break
		}
	}
	seen := map[string]bool{}
	addURL := func(host, path string) {
		if host == "" {
			return
		}
		scheme := "http"
		if tlsCovers(ing.Spec.TLS, host) {
			scheme = "https"
		}
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
		u := scheme + "://" + host + path
		if !seen[u] {
			seen[u] = true
			out.URLs = append(out.URLs, u)
		}
	}
	for _, r := range ing.Spec.Rules {
		host := cmp.Or(r.Host, lb)
		if r.HTTP == nil || len(r.HTTP.Paths) == 0 {
			addURL(host, "/")
			continue
		}
		for _, p := range r.HTTP.Paths {
			addURL(host, p.Path)
		}
	}
	if len(ing.Spec.Rules) == 0 && ing.Spec.DefaultBackend != nil {
		addURL(lb, "/")
	}
	out.URLs = capList(out.URLs, maxURLs)
	return out
}

// tlsCovers says whether a TLS entry lists host, wildcards included.
func tlsCovers(tls []networkingv1.IngressTLS, host string) bool {
	for _, t := range tls {
		for _, h := range t.Hosts {
			if h == host {
				return true
			}
			if rest, ok := strings.CutPrefix(h, "*."); ok {
				if i := strings.IndexByte(host, '.'); i > 0 && host[i+1:] == rest {
					return true
				}
			}
		}
	}
	return false
}

// secret reads the key names of a Secret from its unstructured form, so
// values are never decoded.
func secret(u *unstructured.Unstructured) Secret {
	s := Secret{Name: u.GetName(), Namespace: u.GetNamespace()}
	s.Type, _, _ = unstructured.NestedString(u.Object, "type")
	for _, field := range []string{"data", "stringData"} {
		if m, ok := u.Object[field].(map[string]any); ok {
			for k := range m {
				s.Keys = append(s.Keys, k)
			}
		}
	}
	slices.Sort(s.Keys)
	s.Keys = capList(slices.Compact(s.Keys), maxKeys)
	return s
}

// finish sorts what was collected, chooses the endpoint (before cutting, so
// the cut never changes it) and bounds the lists.
func (a *Access) finish() {
	slices.SortFunc(a.Services, func(x, y Service) int {
		return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Namespace, y.Namespace))
	})
	slices.SortFunc(a.Ingresses, func(x, y Ingress) int {
		return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Namespace, y.Namespace))
	})
	slices.SortFunc(a.Secrets, func(x, y Secret) int {
		return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Namespace, y.Namespace))
	})
	a.Endpoint = endpoint(a)
	if n := len(a.Services) - maxAccessItems; n > 0 {
		a.Services = capList(a.Services, maxAccessItems)
		a.Omitted = append(a.Omitted, fmt.Sprintf("%d more Services not shown", n))
	}
	if n := len(a.Ingresses) - maxAccessItems; n > 0 {
		a.Ingresses = capList(a.Ingresses, maxAccessItems)
		a.Omitted = append(a.Omitted, fmt.Sprintf("%d more Ingresses not shown", n))
	}
	if n := len(a.Secrets) - maxAccessItems; n > 0 {
		a.Secrets = capList(a.Secrets, maxAccessItems)
		a.Omitted = append(a.Omitted, fmt.Sprintf("%d more Secrets not shown", n))
	}
}

// capList keeps the first max elements.
func capList[T any](l []T, max int) []T {
	if len(l) > max {
		return slices.Clip(l[:max])
	}
	return l
}

func endpoint(a *Access) string {
	for _, s := range a.Services {
		if len(s.External) > 0 {
			if len(s.Ports) == 0 {
				return s.External[0]
			}
			return hostPort(s.External[0], s.Ports[0].Port)
		}
	}
	for _, in := range a.Ingresses {
		if len(in.URLs) > 0 {
			return in.URLs[0]
		}
	}
	if len(a.Services) > 0 {
		s := a.Services[0]
		if len(s.Ports) == 0 {
			return s.DNS
		}
		return s.DNS + fmt.Sprintf(":%d", s.Ports[0].Port)
	}
	return ""
}
