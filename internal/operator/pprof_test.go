package operator

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"

	"github.com/chartkind/chartkind/internal/testenv"
)

// --pprof adds Go's profiles to the metrics server, and only then: a heap
// profile fetched from it parses and names the operator's own code.
func TestPprofOnMetricsAddress(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	for _, on := range []bool{false, true} {
		addr := freeAddr(t)
		op, err := New(env.Config, Options{MetricsBindAddress: addr, HealthProbeBindAddress: "0", Pprof: on, Logger: logr.Discard(), NamespaceRolesInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- op.Start(ctx) }()
		testenv.WaitFor(t, time.Minute, "metrics", func(ctx context.Context) error {
			code, _, err := get(ctx, "http://"+addr+"/metrics")
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("/metrics: %d", code)
			}
			return err
		})
		code, body, err := get(context.Background(), "http://"+addr+"/debug/pprof/heap")
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pprof=%v: operator stopped: %v", on, err)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !on {
			if code != http.StatusNotFound {
				t.Errorf("without --pprof, /debug/pprof/heap answered %d, want 404", code)
			}
			continue
		}
		if code != http.StatusOK {
			t.Fatalf("with --pprof, /debug/pprof/heap answered %d: %.200s", code, body)
		}
		// A profile is a gzip'ed protocol buffer whose string table holds
		// the sample types and the function names in plain text.
		zr, err := gzip.NewReader(strings.NewReader(body))
		if err != nil {
			t.Fatalf("heap profile is not gzip'ed: %v", err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("heap profile: %v", err)
		}
		for _, want := range []string{"inuse_space", "github.com/chartkind/chartkind/internal/"} {
			if !bytes.Contains(raw, []byte(want)) {
				t.Errorf("heap profile (%d bytes) does not mention %q", len(raw), want)
			}
		}
	}
}

func TestPprofNeedsMetrics(t *testing.T) {
	_, err := New(&rest.Config{Host: "https://127.0.0.1:1"}, Options{MetricsBindAddress: "0", Pprof: true})
	if err == nil || !strings.Contains(err.Error(), "--pprof") || !strings.Contains(err.Error(), "--metrics-bind-address") {
		t.Errorf("--pprof without metrics: %v, want an error naming both flags", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
