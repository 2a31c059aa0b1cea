package testenv

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// KillAPIServer kills kube-apiserver with SIGKILL, as a crash or a lost control-plane node
// would: no graceful shutdown, every connection reset, every request failing and every watch
// ended until StartAPIServer. etcd keeps running with its data. (A graceful SIGTERM is no
// quicker to test: with clients' watches open, kube-apiserver takes longer than envtest's stop
// timeout to drain them.)
func (e *Env) KillAPIServer() error {
	if e.envtest == nil || e.envtest.ControlPlane.APIServer == nil {
		return errors.New("testenv: no API server to kill")
	}
	as := e.envtest.ControlPlane.APIServer
	children, err := childrenWithExe(as.Path)
	if err != nil {
		return fmt.Errorf("testenv: finding kube-apiserver: %w", err)
	}
	// Another Env of this process (a package's shared one) runs the same binary.
	pids := map[int]bool{}
	for _, g := range e.groups {
		if children[g] {
			pids[g] = true
		}
	}
	if len(pids) != 1 {
		return fmt.Errorf("testenv: %d kube-apiserver processes, want 1", len(pids))
	}
	for pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("testenv: killing kube-apiserver (pid %d): %w", pid, err)
		}
		deadline := time.Now().Add(stopGracePeriod)
		for processExists(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("testenv: kube-apiserver (pid %d) still exists %s after SIGKILL", pid, stopGracePeriod)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// envtest reaps it and sees it exited: its Stop only releases what it holds.
	deadline := time.Now().Add(stopGracePeriod)
	for {
		err := as.Stop()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testenv: after killing kube-apiserver: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartAPIServer starts kube-apiserver again after KillAPIServer, on the same address and with
// the same serving and client certificates (they live in Dir), so Config, Client and
// KubeconfigPath keep working; it returns once /healthz answers. The new process is watched
// and stopped like the first one.
func (e *Env) StartAPIServer() error {
	if e.envtest == nil || e.envtest.ControlPlane.APIServer == nil {
		return errors.New("testenv: no API server to start")
	}
	as := e.envtest.ControlPlane.APIServer
	envtestStartMu.Lock()
	defer envtestStartMu.Unlock()
	before, _ := childrenWithExe(as.Path)
	startErr := as.Start()
	after, _ := childrenWithExe(as.Path)
	for pid := range after {
		if !before[pid] {
			e.groups = append(e.groups, pid) // envtest starts it with Setpgid: pgid == pid
			_ = e.watchdog.watchGroup(pid)
		}
	}
	if startErr != nil {
		return fmt.Errorf("testenv: starting kube-apiserver again: %w", startErr)
	}
	return nil
}
