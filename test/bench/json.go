package main

import (
	"encoding/json"
	"io"
	"math"
	"time"
)

// phases3 is one figure for each of the three phases the ideal mirror has.
type phases3 struct {
	Create float64 `json:"create"`
	Ready  float64 `json:"ready"`
	Update float64 `json:"update"`
}

// jsonResult is what `-json` prints: throughputs in objects/s, latencies in
// milliseconds, ratios chartkind / ideal.
type jsonResult struct {
	Kinds   int  `json:"kinds"`
	Objects int  `json:"objects"` // per kind
	Insight bool `json:"insight"`
	Shards  int  `json:"shards"` // operator processes; RSS and writes are their sums
	CPUs    int  `json:"cpus"`
	// Bulk phases: every object changed at once, objects/s over the phase.
	Ideal     *phases3 `json:"ideal,omitempty"`
	Chartkind phases3  `json:"chartkind"`
	// Chartkind's throughput as a percentage of the ideal mirror's.
	PercentOfIdeal *phases3 `json:"percentOfIdeal,omitempty"`
	// The schema of the ideal's kinds (-ideal-schema): "free" or "chartkind".
	IdealSchema string `json:"idealSchema,omitempty"`
	// -ideal-schema both: the ideal measured again on chartkind's CRD, and
	// chartkind's throughput as a percentage of that.
	IdealChartkindSchema          *phases3 `json:"idealChartkindSchema,omitempty"`
	PercentOfIdealChartkindSchema *phases3 `json:"percentOfIdealChartkindSchema,omitempty"`
	// -ideal-schema all: the ideal measured a third time, on chartkind's CRD
	// and writing chartkind's status, and chartkind's throughput as a
	// percentage of that: what is left is chartkind's own work.
	IdealChartkindStatus          *phases3 `json:"idealChartkindStatus,omitempty"`
	PercentOfIdealChartkindStatus *phases3 `json:"percentOfIdealChartkindStatus,omitempty"`
	// One change at a time: p50 latency, and chartkind's p50 / the ideal's p50.
	SingleIdealP50Ms     *phases3 `json:"singleIdealP50Ms,omitempty"`
	SingleChartkindP50Ms *phases3 `json:"singleChartkindP50Ms,omitempty"`
	SingleLatencyRatio   *phases3 `json:"singleLatencyRatio,omitempty"`
	// The API server's own create → watch event latency (ConfigMaps), p50.
	BaselineP50Ms float64 `json:"baselineP50Ms"`
	// Definition created → kind served.
	ServedP50Ms float64 `json:"servedP50Ms"`
	ServedP99Ms float64 `json:"servedP99Ms"`
	// The create phase's wall time, creates included: at large sizes, what a
	// bulk import of that many objects takes.
	CreateSec  float64 `json:"createSec"`
	RSSMiB     float64 `json:"rssMiB"`
	PeakRSSMiB float64 `json:"peakRssMiB"`
	// Of RSSMiB, anonymous memory (heap, stacks): the rest is the pages of
	// the binary itself, which depend on its size, not on the objects.
	RSSAnonMiB float64 `json:"rssAnonMiB"`
	IdleWrites int64   `json:"idleWrites"`
	// Restart: writes of the restarted operator's start sync, and how long it took.
	RestartWrites    *int64   `json:"restartWrites,omitempty"`
	RestartSyncedSec *float64 `json:"restartSyncedSec,omitempty"`
	// CPU time per object in each phase, in milliseconds: of the mirror
	// process, and of kube-apiserver and etcd together.
	CPUMsPerObject      cpuPerObject  `json:"cpuMsPerObject"`
	IdealCPUMsPerObject *cpuPerObject `json:"idealCpuMsPerObject,omitempty"`
	WritesPerObject     phases3       `json:"writesPerObject"`
	ReadsPerObject      phases3       `json:"readsPerObject"`
}

// cpuPerObject is CPU time per object of a mirror and of the control plane.
type cpuPerObject struct {
	Mirror       phases3 `json:"mirror"`
	ControlPlane phases3 `json:"controlPlane"`
}

func cpuOf(ps []phaseResult) cpuPerObject {
	var out cpuPerObject
	at := func(i int, f func(counters) time.Duration) float64 {
		if i >= len(ps) {
			return 0
		}
		return round2(ps[i].perCPU(f(ps[i].ops)))
	}
	op := func(c counters) time.Duration { return c.opCPU }
	cp := func(c counters) time.Duration { return c.cpCPU }
	out.Mirror = phases3{at(0, op), at(1, op), at(2, op)}
	out.ControlPlane = phases3{at(0, cp), at(1, cp), at(2, cp)}
	return out
}

func writeJSON(w io.Writer, c config, r *result) error {
	tp := func(p phaseResult) float64 { return round1(float64(r.total) / p.wall.Seconds()) }
	j := jsonResult{Kinds: c.kinds, Objects: c.objects, Insight: r.insight, CPUs: numCPU(), Shards: max(c.shards, 1),
		BaselineP50Ms: ms(pct(r.baseline, 50)), ServedP50Ms: ms(pct(r.served, 50)), ServedP99Ms: ms(pct(r.served, 99)),
		RSSMiB: round1(mib(r.rss)), PeakRSSMiB: round1(mib(r.hwm)), RSSAnonMiB: round1(mib(r.rssAnon)), IdleWrites: r.idleOps.writes}
	// -create-only measures the first phase only: the others stay 0.
	per := func(i int, n func(counters) int64) float64 {
		if i >= len(r.phases) {
			return 0
		}
		return round2(r.phases[i].per(n(r.phases[i].ops)))
	}
	through := func(i int) float64 {
		if i >= len(r.phases) {
			return 0
		}
		return tp(r.phases[i])
	}
	wr := func(c counters) int64 { return c.writes }
	rd := func(c counters) int64 { return c.reads }
	j.Chartkind = phases3{through(0), through(1), through(2)}
	j.WritesPerObject = phases3{per(0, wr), per(1, wr), per(2, wr)}
	j.ReadsPerObject = phases3{per(0, rd), per(1, rd), per(2, rd)}
	j.CPUMsPerObject = cpuOf(r.phases)
	if len(r.phases) > 0 {
		j.CreateSec = round1(r.phases[0].wall.Seconds())
	}
	percent := func(ideal *phases3) *phases3 {
		return &phases3{round1(100 * j.Chartkind.Create / ideal.Create), round1(100 * j.Chartkind.Ready / ideal.Ready), round1(100 * j.Chartkind.Update / ideal.Update)}
	}
	if id := r.idealSchema; id != nil && len(id.phases) == 3 {
		j.IdealChartkindSchema = &phases3{tp(id.phases[0]), tp(id.phases[1]), tp(id.phases[2])}
		j.PercentOfIdealChartkindSchema = percent(j.IdealChartkindSchema)
	}
	if id := r.idealStatus; id != nil && len(id.phases) == 3 {
		j.IdealChartkindStatus = &phases3{tp(id.phases[0]), tp(id.phases[1]), tp(id.phases[2])}
		j.PercentOfIdealChartkindStatus = percent(j.IdealChartkindStatus)
	}
	if id := r.ideal; id != nil && len(id.phases) == 3 {
		j.IdealSchema = id.schema
		j.Ideal = &phases3{tp(id.phases[0]), tp(id.phases[1]), tp(id.phases[2])}
		j.PercentOfIdeal = percent(j.Ideal)
		ic := cpuOf(id.phases)
		j.IdealCPUMsPerObject = &ic
		if len(id.single[0]) > 0 && len(r.single[0]) > 0 {
			p := func(s [3][]time.Duration) *phases3 {
				return &phases3{ms(pct(s[0], 50)), ms(pct(s[1], 50)), ms(pct(s[2], 50))}
			}
			j.SingleIdealP50Ms, j.SingleChartkindP50Ms = p(id.single), p(r.single)
			j.SingleLatencyRatio = &phases3{round2(j.SingleChartkindP50Ms.Create / j.SingleIdealP50Ms.Create),
				round2(j.SingleChartkindP50Ms.Ready / j.SingleIdealP50Ms.Ready), round2(j.SingleChartkindP50Ms.Update / j.SingleIdealP50Ms.Update)}
		}
	}
	if rc := r.recheck; rc != nil {
		w, s := rc.startOps.writes, round1(rc.startTook.Seconds())
		j.RestartWrites, j.RestartSyncedSec = &w, &s
	}
	enc := json.NewEncoder(w)
	return enc.Encode(j)
}

func ms(d time.Duration) float64 { return round2(float64(d) / float64(time.Millisecond)) }
func round1(f float64) float64   { return math.Round(f*10) / 10 }
func round2(f float64) float64   { return math.Round(f*100) / 100 }
