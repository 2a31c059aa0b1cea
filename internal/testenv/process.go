package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGracePeriod is how long a child may take to exit after SIGTERM before its whole process
// group is killed. The Flux controllers would otherwise wait up to their
// --graceful-shutdown-timeout for in-flight reconciliations.
const stopGracePeriod = 5 * time.Second

// child is a process started by this package in its own process group.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // valid after done is closed
}

// startChild starts bin with args in a new process group, with its stdout and stderr appended
// to logPath (and streamed to stderr when TESTENV_VERBOSE=1).
func startChild(name, bin string, args, env []string, logPath string) (*child, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = outputWriter(name, logFile)
	cmd.Stderr = cmd.Stdout
	// A process group of its own lets Stop (and the watchdog) kill the child together with
	// anything it spawns, and keeps terminal signals sent to the test's group from reaching it
	// before the test has had a chance to stop it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, logFile: logFile, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has already exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop terminates the child's process group: SIGTERM, then SIGKILL after grace. It returns once
// the child has been reaped and no process of its group is left.
func (c *child) stop(grace time.Duration) error {
	pgid := c.pid()
	if !c.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-c.done
		}
	}
	// The leader is gone; take down anything it left behind in its group.
	return killGroup(pgid, grace)
}

// killGroup SIGKILLs process group pgid and waits until no member is left.
func killGroup(pgid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Kill(-pgid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) || !groupExists(pgid) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process group %d still exists after SIGKILL: %v", pgid, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupExists reports whether any process of group pgid is still alive. Zombies do not count:
// an orphan killed by the watchdog is reaped by init (or a subreaper) at its own pace, and in a
// container whose PID 1 never reaps, it would stay a zombie forever while holding no resources.
func groupExists(pgid int) bool {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procStat(pid)
		if err != nil || len(st) < 3 {
			continue
		}
		if st[2] == strconv.Itoa(pgid) && st[0] != "Z" {
			return true
		}
	}
	return false
}

// processExists reports whether pid names a process that has not been reaped yet.
func processExists(pid int) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return err == nil
}

// outputWriter returns where a child's output goes: its log file, and stderr too when
// TESTENV_VERBOSE=1.
func outputWriter(name string, logFile io.Writer) io.Writer {
	if os.Getenv("TESTENV_VERBOSE") == "1" {
		return io.MultiWriter(logFile, &prefixWriter{prefix: "[" + name + "] ", w: os.Stderr})
	}
	return logFile
}

// prefixWriter prefixes every line with the name of the process that wrote it.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		_, _ = fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
}

// watchdog is a tiny shell process that kills the registered process groups and removes the
// registered directories as soon as the test binary dies without stopping the environment (a
// test timeout, a panic in TestMain, os.Exit, SIGKILL). It learns about groups and directories
// over its stdin; the write end of that pipe is held only by this process (close-on-exec), so
// the kernel closes it when the process dies, however it dies, and the shell's read loop ends.
// A normal Stop kills the watchdog first and cleans up itself.
type watchdog struct {
	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

const watchdogScript = `
nl='
'
pgids= dirs=
while IFS= read -r line; do
	case "$line" in
	"p "*) pgids="$pgids ${line#p }" ;;
	"d "*) dirs="$dirs${line#d }$nl" ;;
	esac
done
for g in $pgids; do kill -TERM -$g 2>/dev/null; done
sleep 1
for g in $pgids; do kill -KILL -$g 2>/dev/null; done
IFS=$nl
for d in $dirs; do [ -n "$d" ] && rm -rf -- "$d"; done
`

func startWatchdog() (*watchdog, error) {
	cmd := exec.Command("/bin/sh", "-c", watchdogScript)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting watchdog: %w", err)
	}
	w := &watchdog{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(w.done)
	}()
	return w, nil
}

func (w *watchdog) watchGroup(pgid int) error { return w.send(fmt.Sprintf("p %d", pgid)) }
func (w *watchdog) watchDir(dir string) error { return w.send("d " + dir) }

func (w *watchdog) send(line string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := io.WriteString(w.stdin, line+"\n"); err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	return nil
}

// disarm stops the watchdog without letting it act.
func (w *watchdog) disarm() error {
	pgid := w.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-w.done
	_ = w.stdin.Close()
	return killGroup(pgid, stopGracePeriod)
}

// childrenWithExe lists this process's direct children whose executable is exe. envtest starts
// kube-apiserver and etcd without exposing their PIDs; the environment needs them to hand their
// process groups to the watchdog and to check that Stop left nothing behind.
func childrenWithExe(exe string) (map[int]bool, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	want, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return nil, err
	}
	found := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, err := parentPID(pid)
		if err != nil || ppid != self {
			continue
		}
		if got, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && got == want {
			found[pid] = true
		}
	}
	return found, nil
}

// parentPID reads the parent PID from /proc/<pid>/stat.
func parentPID(pid int) (int, error) {
	st, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(st[1])
}

// procStat returns the fields of /proc/<pid>/stat after the command name: state, ppid, pgrp,
// and so on. The command name may hold spaces and parentheses, so fields are counted from the
// last ')'.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 3 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return fields, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. The port is released
// before the child binds it, so another process could grab it in between; on a test machine
// that race is rare enough, and the child failing to bind shows up clearly in its log.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tailReader(r io.Reader, maxLines int) (string, int, error) {
	ring := make([]string, 0, maxLines)
	total := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		total++
		if len(ring) == maxLines {
			ring = ring[1:]
		}
		ring = append(ring, sc.Text())
	}
	return strings.Join(ring, "\n"), total, sc.Err()
}

// poll calls cond every interval until it returns true, an error, or ctx is done.
func poll(ctx context.Context, interval time.Duration, cond func(context.Context) (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
