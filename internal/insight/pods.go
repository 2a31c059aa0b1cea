package insight

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// podLines lists the pods of a workload that is not Current (one List) and
// explains up to maxPodLines of those that are not Ready, sorted by name.
func (o *observer) podLines(ref Ref, u *unstructured.Unstructured) ([]string, error) {
	raw, found, err := unstructured.NestedMap(u.Object, "spec", "selector")
	if err != nil || !found {
		return nil, nil
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil || sel.Empty() {
		// An empty selector would match every pod of the namespace.
		return nil, nil
	}
	var pods corev1.PodList
	if err := o.r.List(o.ctx, &pods, client.InNamespace(ref.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		podsRef := Ref{Namespace: ref.Namespace, Name: "pods of " + ref.Name, Kind: "Pod", Version: "v1"}
		_, text, ferr := classify(err, podsRef)
		if ferr != nil {
			return nil, fmt.Errorf("listing pods of %s: %w", ref, err)
		}
		return []string{ref.String() + ": listing pods: " + text}, nil
	}
	var bad []*corev1.Pod
	for i := range pods.Items {
		if p := &pods.Items[i]; notReady(p) {
			bad = append(bad, p)
		}
	}
	slices.SortFunc(bad, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	var lines []string
	for _, p := range bad[:min(len(bad), maxPodLines)] {
		more, err := o.podProblem(p)
		if err != nil {
			return nil, err
		}
		lines = append(lines, more...)
	}
	if n := len(bad) - maxPodLines; n > 0 {
		lines = append(lines, fmt.Sprintf("%s: %d more pods not ready", ref, n))
	}
	return lines, nil
}

// notReady says whether a pod deserves a line: not being deleted (old pods
// of a rollout), not completed successfully, and not Ready.
func notReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded {
		return false
	}
	c := podCondition(p, corev1.PodReady)
	return c == nil || c.Status != corev1.ConditionTrue
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// podProblem explains why a pod is not Ready with its most useful reason, in
// words that do not change while the cause stays (no ages, no restart counts,
// no back-off durations): unscheduled pods give the scheduler's message and
// name their Pending claims; otherwise the first waiting or failed container;
// otherwise the Ready condition.
func (o *observer) podProblem(p *corev1.Pod) ([]string, error) {
	name := Ref{Namespace: p.Namespace, Name: p.Name, Kind: "Pod"}.String()
	if c := podCondition(p, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse {
		lines, err := o.claimLines(p)
		if err != nil {
			return nil, err
		}
		reason := c.Reason
		if reason == "" {
			reason = "Unschedulable"
		}
		msg := schedulerMessage(c.Message)
		if len(lines) == 0 || !strings.Contains(msg, "PersistentVolumeClaim") {
			line := name + ": " + reason
			if msg != "" {
				line += ": " + msg
			}
			lines = append(lines, line)
		}
		return lines, nil
	}
	if r := containerReason(p); r != "" {
		return []string{name + ": " + r}, nil
	}
	if c := podCondition(p, corev1.PodReady); c != nil && c.Reason != "" {
		line := name + ": " + c.Reason
		if m := clean(c.Message); m != "" {
			line += ": " + m
		}
		return []string{line}, nil
	}
	phase := string(p.Status.Phase)
	if phase == "" {
		phase = "Pending"
	}
	return []string{name + ": " + phase}, nil
}

// schedulerMessage drops the "preemption: ..." tail the scheduler appends,
// which repeats the node count and says no victims were found, and the
// dynamic resource allocation note before it ("no new claims to deallocate,"
// in Kubernetes 1.36), which says nothing to a user.
func schedulerMessage(m string) string {
	m = clean(m)
	if i := strings.Index(m, " preemption:"); i >= 0 {
		m = strings.TrimSpace(m[:i])
	}
	m = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(strings.ReplaceAll(m, "no new claims to deallocate,", "")), ","))
	return m
}

// claimLines reads the PersistentVolumeClaims of an unscheduled pod (each
// claim once per Observe) and returns a line for each one that is not Bound.
func (o *observer) claimLines(p *corev1.Pod) ([]string, error) {
	var lines []string
	for _, v := range p.Spec.Volumes {
		var claim string
		switch {
		case v.PersistentVolumeClaim != nil:
			claim = v.PersistentVolumeClaim.ClaimName
		case v.Ephemeral != nil:
			claim = p.Name + "-" + v.Name
		default:
			continue
		}
		key := types.NamespacedName{Namespace: p.Namespace, Name: claim}
		line, ok := o.claims[key]
		if !ok {
			var err error
			if line, err = o.claimLine(key); err != nil {
				return nil, err
			}
			o.claims[key] = line
		}
		if line != "" {
			lines = append(lines, line)
		}
	}
	return lines, nil
}

func (o *observer) claimLine(key types.NamespacedName) (string, error) {
	ref := Ref{Namespace: key.Namespace, Name: key.Name, Kind: "PersistentVolumeClaim", Version: "v1"}
	var pvc corev1.PersistentVolumeClaim
	if err := o.r.Get(o.ctx, key, &pvc); err != nil {
		if apierrors.IsNotFound(err) {
			return ref.String() + ": not found", nil
		}
		_, text, ferr := classify(err, ref)
		if ferr != nil {
			return "", ferr
		}
		return ref.String() + ": " + text, nil
	}
	if pvc.Status.Phase == corev1.ClaimBound {
		return "", nil
	}
	phase := string(pvc.Status.Phase)
	if phase == "" {
		phase = string(corev1.ClaimPending)
	}
	return ref.String() + ": " + phase, nil
}

// containerReason finds the first init container, then container, that
// explains the pod: waiting for a reason other than normal start-up, failed,
// or restarting after a failure.
func containerReason(p *corev1.Pod) string {
	images := map[string]string{}
	for _, c := range append(slices.Clip(p.Spec.InitContainers), p.Spec.Containers...) {
		images[c.Name] = c.Image
	}
	for _, cs := range p.Status.InitContainerStatuses {
		if r := containerStatusReason(cs, images); r != "" {
			return "Init:" + r
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if r := containerStatusReason(cs, images); r != "" {
			return r
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return w.Reason + ": container " + cs.Name
		}
	}
	return ""
}

func containerStatusReason(cs corev1.ContainerStatus, images map[string]string) string {
	prefix := ": container " + cs.Name
	switch {
	case cs.State.Waiting != nil:
		w := cs.State.Waiting
		switch w.Reason {
		case "", "ContainerCreating", "PodInitializing":
			return ""
		case "CrashLoopBackOff":
			// The kubelet's message carries the growing back-off delay and the
			// pod UID; the last termination says why it crashes, stably.
			return "CrashLoopBackOff" + prefix + exited(cs.LastTerminationState.Terminated)
		case "ErrImagePull", "ImagePullBackOff":
			// Both alternate while the kubelet retries; name them alike.
			image := images[cs.Name]
			if image == "" {
				image = cs.Image
			}
			return fmt.Sprintf("ImagePullBackOff%s: cannot pull image %q", prefix, image)
		}
		if m := clean(w.Message); m != "" {
			return w.Reason + prefix + ": " + m
		}
		return w.Reason + prefix
	case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
		t := cs.State.Terminated
		reason := t.Reason
		if reason == "" {
			reason = "Error"
		}
		return reason + prefix + fmt.Sprintf(": exited with code %d", t.ExitCode)
	case cs.State.Running != nil && !cs.Ready && cs.RestartCount > 0 &&
		cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ExitCode != 0:
		// Between two back-offs a crash-looping container runs for a moment:
		// say the same as while it waits so the line does not flip.
		return "CrashLoopBackOff" + prefix + exited(cs.LastTerminationState.Terminated)
	}
	return ""
}

func exited(t *corev1.ContainerStateTerminated) string {
	if t == nil {
		return ""
	}
	s := fmt.Sprintf(": exited with code %d", t.ExitCode)
	if t.Reason != "" {
		s += " (" + t.Reason + ")"
	}
	return s
}
