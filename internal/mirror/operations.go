package mirror

import (
	"strings"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Operations users request on their application object. Users who may
// update the object (the kind's edit role) but not its HelmRelease ask for them
// with annotations on the object; chartkind forwards them to the HelmRelease,
// where helm-controller acts on them. Nobody who cannot update the object can
// set them, so the object's RBAC is the only gate.
const (
	// AnnotationSuspend on an object set to "true" suspends its release
	// (HelmRelease spec.suspend); removing it, or any other value, resumes it.
	AnnotationSuspend = "apps.chartkind.io/suspend"
	// AnnotationSuspendForwarded on a HelmRelease is the object's suspend
	// request last forwarded ("true" or "false"). spec.suspend follows the
	// object only when that request changes, so an administrator who suspends
	// the HelmRelease directly (flux suspend) is not overridden on every
	// reconcile.
	AnnotationSuspendForwarded = "apps.chartkind.io/suspend-forwarded"
)

// forwardedAnnotations are Flux's request annotations, copied as they are from
// the object to its HelmRelease: reconcile now (requestedAt), force a one-off
// install or upgrade even when out of retries (forceAt, with the same value as
// requestedAt) and reset the failure counters (resetAt, likewise).
var forwardedAnnotations = []string{
	meta.ReconcileRequestAnnotation,
	meta.ForceRequestAnnotation,
	helmv2.ResetRequestAnnotation,
}

// WatchedAnnotations are the object annotations whose change needs a
// reconcile although they change no generation.
func WatchedAnnotations() []string {
	return append(append([]string(nil), forwardedAnnotations...), AnnotationSuspend, AnnotationDependsOn)
}

// suspendRequested is the object's suspend request, "true" or "false".
func suspendRequested(obj *unstructured.Unstructured) string {
	if strings.EqualFold(strings.TrimSpace(obj.GetAnnotations()[AnnotationSuspend]), "true") {
		return "true"
	}
	return "false"
}

// applyOperations forwards the object's requests onto hr (its annotations map
// is ann, written back by the caller).
func applyOperations(obj *unstructured.Unstructured, hr *helmv2.HelmRelease, ann map[string]string) {
	objAnn := obj.GetAnnotations()
	for _, k := range forwardedAnnotations {
		if v, ok := objAnn[k]; ok {
			ann[k] = v
		}
	}
	want := suspendRequested(obj)
	last := ann[AnnotationSuspendForwarded]
	if last == "" {
		last = "false" // never forwarded: a release starts resumed
	}
	if want != last {
		hr.Spec.Suspend = want == "true"
		ann[AnnotationSuspendForwarded] = want
	}
}

// retryHint tells a user of a stuck release how to retry it without access to
// the HelmRelease. forceAt must equal requestedAt for helm-controller to act.
func retryHint(singular, namespace, name string) string {
	return "to retry: T=$(date +%s); kubectl annotate " + singular + " " + name + " -n " + namespace +
		" --overwrite " + meta.ReconcileRequestAnnotation + "=$T " + meta.ForceRequestAnnotation + "=$T"
}

// stuck reports whether hr will not try again by itself: helm-controller
// marks such a release Stalled (RetriesExceeded once remediation retries are
// used up), and only a new generation or a request annotation moves it.
func stuck(hr *helmv2.HelmRelease) bool {
	c := findCondition(hr.Status.Conditions, "Stalled")
	return c != nil && c.Status == "True"
}
