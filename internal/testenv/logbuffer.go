package testenv

import (
	"bytes"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// LogBuffer collects log lines written from several goroutines, such as an
// operator run in-process by a test, to print when the test fails.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Line appends one time-stamped line.
func (b *LogBuffer) Line(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(time.Now().Format("15:04:05.000 "))
	b.buf.WriteString(s)
	b.buf.WriteByte('\n')
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger returns a logger writing to b up to the given verbosity, each line
// starting with tag.
func (b *LogBuffer) Logger(tag string, verbosity int) logr.Logger {
	return funcr.New(func(prefix, args string) { b.Line(tag + prefix + " " + args) }, funcr.Options{Verbosity: verbosity})
}
