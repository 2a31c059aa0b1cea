package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// BenchmarkInsightReads measures what release insight's reads cost the API
// server: a Service and a Helm release record (a 30 KB Secret, the size of a
// small chart's record) read by 8 readers at once, as quorum reads from etcd
// (no resourceVersion) and from the watch cache (resourceVersion "0", what
// insight does). The API server and etcd share the machine's cores, so the
// time per read is their capacity for such reads; cp-ms/op is their CPU per
// read, read from /proc.
//
//	go test ./test/integration -run '^$' -bench InsightReads -benchtime 4000x
func BenchmarkInsightReads(b *testing.B) {
	ctx := context.Background()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side limit: measure the server
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "reads-"}}
	if err := c.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Delete(ctx, ns) })
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "db"},
		Spec: corev1.ServiceSpec{ClusterIP: "None", Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}}}
	rec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "sh.helm.release.v1.db.v1",
		Labels: map[string]string{"owner": "helm", "name": "db", "version": "1"}},
		Type: "helm.sh/release.v1", Data: map[string][]byte{"release": bytes.Repeat([]byte("H4sIAAAAAAAA/+y9"), 30<<10/16)}}
	for _, o := range []client.Object{svc, rec} {
		if err := c.Create(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []struct {
		name string
		rv   string
	}{{"quorum", ""}, {"watch-cache", "0"}} {
		b.Run(mode.name, func(b *testing.B) {
			var opts []client.GetOption
			if mode.rv != "" {
				opts = append(opts, &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: mode.rv}})
			}
			before := controlPlaneCPU(b)
			b.SetParallelism(4) // 8 readers on 2 cores, as insight's prefetch
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					var s corev1.Service
					var r corev1.Secret
					if err := c.Get(ctx, client.ObjectKeyFromObject(svc), &s, opts...); err != nil {
						b.Error(err)
						return
					}
					if err := c.Get(ctx, client.ObjectKeyFromObject(rec), &r, opts...); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(controlPlaneCPU(b)-before)/1e6/float64(b.N), "cp-ms/op")
		})
	}
}

// controlPlaneCPU is the CPU time (ns) used so far by the processes of the
// test environment's process groups (kube-apiserver and etcd).
func controlPlaneCPU(b *testing.B) int64 {
	groups := map[int]bool{}
	for _, g := range env.ProcessGroups() {
		groups[g] = true
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// Fields after the command (which may contain spaces): state ppid pgrp ... utime(14) stime(15).
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 13 {
			continue
		}
		pgrp, _ := strconv.Atoi(fields[2])
		if !groups[pgrp] {
			continue
		}
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks += u + st
	}
	if len(groups) == 0 {
		b.Fatal("the test environment reports no process group")
	}
	return ticks * 1e7 // USER_HZ is 100 on Linux
}
