// Package testenv runs a real Kubernetes control plane for integration and end-to-end tests.
//
// Nothing on the build machines can download binaries (no setup-envtest, kind or Docker), so
// `make testbin` (hack/testbin.sh) compiles pinned versions of kube-apiserver, etcd,
// kube-controller-manager, kubectl and the Flux source- and helm-controllers from the Go module
// proxy into <module root>/bin, together with kube-scheduler and KWOK. This package starts them:
//
//   - kube-apiserver and etcd through controller-runtime's envtest, with the Flux CRDs
//     (bin/flux/crds) and chartkind's own CRDs (config/crd/bases) installed;
//   - optionally kube-controller-manager, restricted to the garbage collector, the namespace
//     controller and clusterrole aggregation, so ownerReferences cascade and namespaces can be
//     deleted as in a real cluster (plain envtest has neither);
//   - optionally source-controller and helm-controller, so HelmReleases are really installed,
//     upgraded and uninstalled by Helm;
//   - optionally (Options.Workloads) kube-controller-manager with all its controllers,
//     kube-scheduler and KWOK simulating one Node (Env.NodeName), so that Deployments become
//     Available, StatefulSets Ready (with volumes from Env.CreatePersistentVolumes) and Jobs
//     Complete, and Pods that do not fit the Node stay Pending, Unschedulable.
//
// There is no kubelet: without Workloads, Pods never run and Deployments never become
// available, so end-to-end charts should then only template objects that are "ready" on
// creation (ConfigMaps, Secrets, Services). With Workloads, KWOK marks every scheduled Pod
// Running and Ready at once (Job Pods then Succeeded): no container runs, readiness probes are
// not evaluated, and there are no logs or exec.
//
// Every child runs in its own process group and is stopped by group (SIGTERM, then SIGKILL after
// a grace period) when the test ends, including when it fails or panics. A small watchdog
// process kills the groups if the test binary itself dies (test timeout, panic in TestMain,
// Ctrl-C), so no apiserver is ever left behind. Each child's output is captured in a log file
// and printed with t.Log when the test fails.
//
// Typical use, one environment per test:
//
//	env := testenv.Start(t, testenv.Options{Flux: true})
//	url := env.ServeCharts(t, "testdata/charts")
//	// create a HelmRepository for url and a HelmRelease with env.Client ...
//	env.WaitForReady(t, release, 2*time.Minute)
//
// or one environment per package, from TestMain:
//
//	func TestMain(m *testing.M) {
//		env, stop, err := testenv.StartMain(testenv.Options{Flux: true})
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		if code != 0 {
//			env.DumpLogs(os.Stderr)
//		}
//		stop()
//		os.Exit(code)
//	}
//
// Tests sharing such an environment can call env.LogOnFailure(t) to have the controllers' output
// written during that test printed if it fails.
//
// Environment variables: TESTENV_VERBOSE=1 streams all children's output to stderr as it is
// written; TESTENV_KEEP=1 keeps the temporary directory (logs, etcd data, certificates,
// kubeconfig) after the environment stops.
package testenv
