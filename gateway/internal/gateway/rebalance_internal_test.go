package gateway

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func testRebalancer(now time.Time) *rebalancer {
	return newRebalancer(Config{
		FleetInterval: time.Second, RebalanceMargin: 0.10,
		RebalanceWindow: 10 * time.Second, RebalanceMaxRate: 100,
	}, now)
}

func loads(counts ...int) []podLoad {
	out := make([]podLoad, len(counts))
	for i, n := range counts {
		out[i] = podLoad{Pod: fmt.Sprintf("gw%d", i+2), Conns: n}
	}
	return out
}

// TestRebalancePlan: when a pod starts shedding, how fast, and when it
// stops.
func TestRebalancePlan(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	warm := t0.Add(3 * time.Second) // three fleet intervals
	type step struct {
		at     time.Duration // after warm
		self   int
		others []podLoad
		want   int
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"warming up: no decision before every pod was heard", []step{
			{-time.Second, 3000, loads(0, 0), 0},
		}},
		{"alone: nothing to compare with", []step{
			{0, 3000, nil, 0}, {time.Second, 3000, nil, 0},
		}},
		{"within the margin: nothing", []step{
			{0, 1100, loads(950, 950), 0}, {5 * time.Second, 1100, loads(950, 950), 0},
		}},
		{"just above the margin: starts, then sheds to the mean, spread over the window", []step{
			{0, 1120, loads(940, 940), 0},                 // mean 1000: episode starts
			{time.Second, 1120, loads(940, 940), 13},      // 120 left over 9 s: 13.3/s
			{2 * time.Second, 1107, loads(946, 947), 13},  // 107 over 8 s, + the 0.3 owed
			{3 * time.Second, 1095, loads(952, 953), 12},  // the 13 shed at 2 s are in transit: mean 1004, 90 over 7 s
			{4 * time.Second, 1020, loads(990, 990), 3},   // within the margin, still above the mean: goes on
			{5 * time.Second, 1000, loads(1000, 1000), 0}, // at the mean: stops
			{6 * time.Second, 1200, loads(900, 900), 0},   // held: the others' reports are that old
		}},
		{"3000 on one pod, two join: bounded by the maximum rate", []step{
			{0, 3000, loads(0, 0), 0},
			{time.Second, 3000, loads(0, 0), 100},              // 2000 over 9 s would be 222/s: at most 100/s
			{1250 * time.Millisecond, 2900, loads(50, 50), 25}, // a quarter second at 100/s
		}},
		{"a draining or silent pod is not in the view: the mean is the others'", []step{
			{0, 1500, loads(1500), 0},
			{time.Second, 1500, loads(1500), 0},
		}},
		{"fewer than minShedExcess above the mean: not worth the reconnects", []step{
			{0, 19, loads(5, 5), 0}, {5 * time.Second, 19, loads(5, 5), 0}, // 9 above the mean
		}},
		{"below the mean: never sheds", []step{
			{0, 500, loads(2500, 0), 0}, {time.Second, 500, loads(2500, 0), 0},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRebalancer(t0)
			for i, s := range tc.steps {
				if got := r.plan(warm.Add(s.at), s.self, s.others); got != s.want {
					t.Errorf("step %d (%v, self %d, others %v): shed %d, want %d", i, s.at, s.self, s.others, got, s.want)
				}
			}
		})
	}
}

// TestRebalanceConverges simulates fleets whose pods each run the policy
// on a 250 ms tick, seeing the others' counts of the tick before, while a
// load balancer spreads every shed socket over all pods (round robin, the
// shedding pod included): every pod ends within ±15% of the mean (or one
// socket) within a few windows and stays there (no pod sheds in the last
// window: nothing oscillates), a pod that joined empty never sheds, and no
// pod sheds faster than the maximum rate. A blind load balancer sends a
// share of the shed sockets back to the pods still shedding, and may push
// a pod just below the mean over the margin (it then sheds too, less): the
// sockets moved stay within four times what an ideal balancer moves.
func TestRebalanceConverges(t *testing.T) {
	cases := []struct {
		name    string
		initial []int
		join    int  // empty pods joining at the start
		stays   bool // nothing is worth moving
	}{
		{"3000 on one pod, two join", []int{3000}, 2, false},
		{"scale-out from 4 to 8", []int{5000, 5000, 5000, 5000}, 4, false},
		{"uneven fleet, no join", []int{1200, 800, 1000, 400}, 0, false},
		{"one pod hot after a rollout", []int{2000, 1000, 1000, 1000, 1000}, 0, false},
		{"small numbers: fewer than minShedExcess above the mean, nothing moves", []int{14, 0}, 1, true},
		{"just enough to move", []int{30, 0}, 1, false},
		{"balanced: nothing moves", []int{1000, 1050, 980}, 0, true},
	}
	const (
		tick   = 250 * time.Millisecond
		window = 10 * time.Second
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Unix(1_000_000, 0)
			counts := append(append([]int{}, tc.initial...), make([]int, tc.join)...)
			total := 0
			for _, n := range counts {
				total += n
			}
			mean := float64(total) / float64(len(counts))
			perfect := 0 // what an ideal balancer moves
			for _, n := range counts {
				perfect += max(0, n-int(mean+0.5))
			}
			pods := make([]*rebalancer, len(counts))
			for i := range pods {
				pods[i] = testRebalancer(t0)
			}
			shedBy := make([]int, len(counts))
			moved, lateShed, lb := 0, 0, 0
			const runFor = 10 * window
			for now := t0; now.Sub(t0) < runFor; now = now.Add(tick) {
				view := append([]int{}, counts...) // the tick before's reports
				var shed int
				for i, r := range pods {
					var others []podLoad
					for j, n := range view {
						if j != i {
							others = append(others, podLoad{Pod: fmt.Sprint(j), Conns: n, seen: now.Add(-tick)})
						}
					}
					n := r.plan(now, counts[i], others)
					if most := int(100*tick.Seconds()) + 1; n > most {
						t.Fatalf("pod %d shed %d in one tick, more than the maximum rate allows (%d)", i, n, most)
					}
					if n > 0 && i >= len(tc.initial) {
						t.Fatalf("pod %d joined empty and sheds %d at %v: %v", i, n, now.Sub(t0), counts)
					}
					counts[i] -= n
					shedBy[i] += n
					shed += n
					if now.Sub(t0) >= runFor-window {
						lateShed += n
					}
				}
				moved += shed
				for ; shed > 0; shed-- { // they reconnect through the load balancer
					counts[lb%len(counts)]++
					lb++
				}
			}
			if tc.stays {
				if moved != 0 {
					t.Errorf("%d sockets moved, want none (shed %v)", moved, shedBy)
				}
				return
			}
			for i, n := range counts {
				if d := float64(n) - mean; d > max(0.15*mean, 1) || -d > max(0.15*mean, 1) {
					t.Errorf("pod %d ends with %d, not within ±15%% of %.0f (%v; shed %v)", i, n, mean, counts, shedBy)
				}
			}
			if lateShed > 0 {
				t.Errorf("%d sockets shed in the last window: not settled (%v, shed %v)", lateShed, counts, shedBy)
			}
			if moved > 4*perfect {
				t.Errorf("%d sockets moved, more than four times the %d an ideal balancer moves (shed %v)", moved, perfect, shedBy)
			}
			t.Logf("ends %v (mean %.0f), shed %v: %d moved for %d ideal", counts, mean, shedBy, moved, perfect)
		})
	}
}

// TestFleetView: reports of other pods are kept until they age out;
// draining and unready pods are known but not counted; a pod's own
// reports and malformed ones are ignored.
func TestFleetView(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	report := func(pod string, conns int, state string, interval time.Duration) []byte {
		b, _ := json.Marshal(fleetReport{Pod: pod, Conns: conns, State: state, IntervalMs: interval.Milliseconds()})
		return b
	}
	f := newFleet("self")
	f.observe(report("gw-a", 100, podServing, time.Second), t0)
	f.observe(report("gw-b", 200, podServing, 10*time.Second), t0)
	f.observe(report("gw-c", 300, podDraining, time.Second), t0)
	f.observe(report("gw-d", 400, podUnready, time.Second), t0)
	f.observe(report("self", 999, podServing, time.Second), t0)
	for _, bad := range [][]byte{
		[]byte(`{"pod":"gw-x","conns":-1,"state":"serving","interval_ms":1000}`),
		[]byte(`{"pod":"gw-x","conns":1,"state":"bored","interval_ms":1000}`),
		[]byte(`{"pod":"gw-x","conns":1,"state":"serving","interval_ms":0}`),
		[]byte(`{"pod":"","conns":1,"state":"serving","interval_ms":1000}`),
		[]byte(`not json`),
	} {
		f.observe(bad, t0)
	}
	steps := []struct {
		at   time.Duration
		want []podLoad
	}{
		{0, []podLoad{{Pod: "gw-a", Conns: 100}, {Pod: "gw-b", Conns: 200}}},
		{3 * time.Second, []podLoad{{Pod: "gw-a", Conns: 100}, {Pod: "gw-b", Conns: 200}}},
		{3*time.Second + time.Millisecond, []podLoad{{Pod: "gw-b", Conns: 200}}}, // gw-a missed 3 intervals
		{31 * time.Second, []podLoad{}},
	}
	for _, s := range steps {
		got := f.serving(t0.Add(s.at))
		for i := range got {
			got[i].seen = time.Time{}
		}
		if fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("at %v: serving %v, want %v", s.at, got, s.want)
		}
	}
	f.mu.Lock()
	left := len(f.pods)
	f.mu.Unlock()
	if left != 0 {
		t.Errorf("%d pods still in the view after every report aged out", left)
	}
}
