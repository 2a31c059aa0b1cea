package mirror

import (
	"testing"
	"time"
)

// The recheck interval of an unhealthy release grows with how long it has
// been unhealthy, not with how many events observed it, and resets once
// healthy.
func TestBackoffGrowsWithTimeNotEvents(t *testing.T) {
	m := &Mirror{}
	m.EnableInsight(InsightOptions{})
	now := time.Unix(0, 0)
	m.now = func() time.Time { return now }
	for range 50 { // many HelmRelease events at the start
		if d := m.backoff("k", false); d != 5*time.Second {
			t.Fatalf("backoff at the start = %s, want 5s", d)
		}
	}
	now = now.Add(2 * time.Minute)
	if d := m.backoff("k", false); d != 30*time.Second {
		t.Errorf("backoff after 2m unhealthy = %s, want 30s", d)
	}
	now = now.Add(time.Hour)
	if d := m.backoff("k", false); d != 5*time.Minute {
		t.Errorf("backoff after an hour = %s, want the 5m cap", d)
	}
	if d := m.backoff("k", true); d != 5*time.Minute {
		t.Errorf("healthy recheck = %s, want HealthyInterval 5m", d)
	}
	if d := m.backoff("k", false); d != 5*time.Second {
		t.Errorf("backoff after recovering and failing again = %s, want 5s", d)
	}
}
