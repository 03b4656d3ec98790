package main

import (
	"strings"
	"testing"
)

// TestRebalanceCheck: the workload's verdict fails on each thing the
// issue rules out, and passes a clean run.
func TestRebalanceCheck(t *testing.T) {
	clean := func() (*rebalanceResult, *clusterShard) {
		s := &clusterShard{clients: []*clusterClient{
			{disconnects: []clusterDisconnect{{Code: "1012"}}, backs: []clusterBack{{SubResumed: "true"}}},
			{},
		}}
		r := &rebalanceResult{
			Conns: 3000, Tolerance: 0.15, ShedTotal: []float64{2900, 0, 0}, PresenceOn: 3000,
			Clients: &clusterShardResult{
				Disconnected: 1, OtherDrops: map[string]int{"gw1 1012": 1}, PublishedKnown: true, Expected: 100,
				SubResumed: map[string]int{"true": 1}, ReadyResumed: map[string]int{"true": 1},
			},
		}
		return r, s
	}
	cases := []struct {
		name    string
		spoil   func(*rebalanceResult, *clusterShard)
		verdict string
		want    string // in a failure; "" for none
	}{
		{"clean", func(*rebalanceResult, *clusterShard) {}, "", ""},
		{"never within tolerance", func(*rebalanceResult, *clusterShard) {}, "not within ±15%", "not within"},
		{"oscillation while holding", func(r *rebalanceResult, _ *clusterShard) { r.OutOfTolInHold = 2 }, "", "oscillation"},
		{"a joined pod shed", func(r *rebalanceResult, _ *clusterShard) { r.ShedTotal[2] = 200 }, "", "gw3 shed"},
		{"presence flap", func(r *rebalanceResult, _ *clusterShard) { r.PresenceOff, r.PresenceOn = 1, 3001 }, "", "presence"},
		{"a shed client not back", func(_ *rebalanceResult, s *clusterShard) { s.clients[0].backs = nil }, "", "not back"},
		{"another close code", func(r *rebalanceResult, _ *clusterShard) { r.Clients.OtherDrops["gw1 1006"] = 1 }, "", "1006"},
		{"an event lost", func(r *rebalanceResult, _ *clusterShard) { r.Clients.Lost = 1 }, "", "lost"},
		{"publisher unknown", func(r *rebalanceResult, _ *clusterShard) { r.Clients.PublishedKnown = false }, "", "loss not checked"},
		{"resumed:false", func(r *rebalanceResult, _ *clusterShard) { r.Clients.SubResumed["false"] = 1 }, "", "resumed:false"},
		{"nobody shed", func(r *rebalanceResult, _ *clusterShard) { r.Clients.Disconnected = 0 }, "", "no client was shed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, s := clean()
			tc.spoil(r, s)
			r.check(s, tc.verdict)
			got := strings.Join(r.Failures, "; ")
			switch {
			case tc.want == "" && got != "":
				t.Errorf("failures %q, want none", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("failures %q, want one about %q", got, tc.want)
			}
		})
	}
}
