package insight

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// pendingRefs lists the objects of a release that helm-controller has not
// recorded an inventory for yet: the first install, while Helm waits for its
// workloads. That wait is when users most need to know why it does not end
// (a pod that cannot be scheduled, a claim with no volume), and the release's
// manifest is already in Helm's storage, in the newest release record.
// Only the kinds Observe reads are kept. It returns nil when no record can
// be read; errors are only those worth a retry.
func pendingRefs(ctx context.Context, r client.Reader, hr *helmv2.HelmRelease) ([]Ref, error) {
	ns := hr.Status.StorageNamespace
	if ns == "" {
		ns = hr.GetStorageNamespace()
	}
	var list corev1.SecretList
	if err := r.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{"owner": "helm", "name": hr.GetReleaseName()}); err != nil {
		if _, _, ferr := classify(err, Ref{Kind: "Secret", Namespace: ns}); ferr != nil {
			return nil, fmt.Errorf("listing release records of %s/%s: %w", ns, hr.GetReleaseName(), ferr)
		}
		return nil, nil // forbidden or not served: no manifest to go by
	}
	var newest *corev1.Secret
	newestVersion := -1
	for i := range list.Items {
		s := &list.Items[i]
		v, err := strconv.Atoi(s.Labels["version"])
		if err == nil && v > newestVersion {
			newest, newestVersion = s, v
		}
	}
	if newest == nil {
		return nil, nil
	}
	rel, err := decodeRecord(newest.Data["release"])
	if err != nil {
		return nil, nil // not a record Helm wrote: nothing to go by
	}
	return manifestRefs(rel.Manifest, rel.Namespace), nil
}

// record is the part of Helm's release record read here.
type record struct {
	Namespace string `json:"namespace"`
	Manifest  string `json:"manifest"`
}

// decodeRecord decodes a whole release record (see decodeNotes for the format).
func decodeRecord(data []byte) (*record, error) {
	in, err := openRecord(data)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var rel record
	if err := json.NewDecoder(in).Decode(&rel); err != nil {
		return nil, fmt.Errorf("decoding release: %w", err)
	}
	return &rel, nil
}

// docSeparator splits a rendered manifest into documents, as Helm's
// releaseutil.SplitManifests does.
var docSeparator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

// manifestRefs returns the objects of a rendered manifest that Observe reads,
// in the release namespace unless the manifest says otherwise.
func manifestRefs(manifest, namespace string) []Ref {
	var refs []Ref
	for _, doc := range docSeparator.Split(manifest, -1) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil || head.Kind == "" || head.Metadata.Name == "" {
			continue
		}
		gv, err := schema.ParseGroupVersion(head.APIVersion)
		if err != nil {
			continue
		}
		ns := head.Metadata.Namespace
		if ns == "" {
			ns = namespace
		}
		ref := Ref{Namespace: ns, Name: head.Metadata.Name, Group: gv.Group, Kind: head.Kind, Version: gv.Version}
		if readKind(ref) {
			refs = append(refs, ref)
		}
	}
	return sortRefs(refs)
}
