package testenv

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// tailLines is how much of each component's log a failing test prints. The controllers' last
// lines are what explains a failure; the full logs stay available with TESTENV_KEEP=1.
const tailLines = 150

// DumpLogs writes the tail of every component's log to w. For TestMain-based environments,
// call it when m.Run() reports a failure.
func (e *Env) DumpLogs(w io.Writer) {
	e.writeTails(w, nil, tailLines)
}

// LogOnFailure makes a test that shares an environment (StartMain) print, if it fails, what
// the components logged while it ran. Start does this by itself.
func (e *Env) LogOnFailure(t testing.TB) {
	t.Helper()
	offsets := e.logSizes()
	t.Cleanup(func() {
		if t.Failed() {
			e.logTails(t, offsets)
		}
	})
}

func (e *Env) logSizes() map[string]int64 {
	sizes := map[string]int64{}
	for _, l := range e.logs {
		if fi, err := os.Stat(l.path); err == nil {
			sizes[l.path] = fi.Size()
		}
	}
	return sizes
}

// logTails logs, one t.Log per component, the last lines each component wrote after the given
// offsets (from the beginning when offsets is nil).
func (e *Env) logTails(t testing.TB, offsets map[string]int64) {
	t.Helper()
	for _, l := range e.logs {
		var b strings.Builder
		e.writeTail(&b, l, offsets[l.path], tailLines)
		t.Log(b.String())
	}
}

func (e *Env) writeTails(w io.Writer, offsets map[string]int64, lines int) {
	for _, l := range e.logs {
		e.writeTail(w, l, offsets[l.path], lines)
	}
}

func (e *Env) writeTail(w io.Writer, l namedLog, offset int64, lines int) {
	f, err := os.Open(l.path)
	if err != nil {
		fmt.Fprintf(w, "---- %s: %v\n", l.name, err)
		return
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		fmt.Fprintf(w, "---- %s: %v\n", l.name, err)
		return
	}
	tail, total, err := tailReader(f, lines)
	if err != nil {
		fmt.Fprintf(w, "---- %s: %v\n", l.name, err)
		return
	}
	shown := min(total, lines)
	fmt.Fprintf(w, "---- %s: last %d of %d lines (%s) ----\n%s\n", l.name, shown, total, l.path, tail)
}
