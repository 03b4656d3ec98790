package gateway

import (
	"testing"
	"time"
)

// TestBacklogBounds: the backlog keeps the events after backlogFrom while
// someone catches up, drops its oldest past its bounds (moving backlogFrom
// with them), and is forgotten when nobody catches up.
func TestBacklogBounds(t *testing.T) {
	now := time.Now()
	small := event{frame: make([]byte, 10)}
	big := event{frame: make([]byte, maxBacklogBytes/4+1)}
	cases := []struct {
		name      string
		events    []event
		wantLen   int
		wantFrom  uint64 // after recording seqs 1..len(events), first recorded after position 0
		catching  bool
		wantEmpty bool
	}{
		{"nobody catches up", []event{small, small}, 0, 0, false, true},
		{"within bounds", []event{small, small, small}, 3, 0, true, false},
		{"past the byte bound", []event{big, big, big, big, big}, 3, 2, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp := &topic{}
			if tc.catching {
				tp.catching = map[*conn]*cursor{{}: {}}
			}
			for i, ev := range tc.events {
				tp.recordLocked(uint64(i), uint64(i+1), ev, now)
			}
			if tc.wantEmpty {
				if tp.backlog != nil {
					t.Fatalf("backlog of %d kept with nobody catching up", len(tp.backlog))
				}
				return
			}
			if len(tp.backlog) != tc.wantLen || tp.backlogFrom != tc.wantFrom {
				t.Fatalf("backlog %d events from %d, want %d from %d", len(tp.backlog), tp.backlogFrom, tc.wantLen, tc.wantFrom)
			}
			if first := tp.backlog[0].seq; first != tc.wantFrom+1 {
				t.Fatalf("first event %d right after %d", first, tp.backlogFrom)
			}
		})
	}
	t.Run("past the event bound", func(t *testing.T) {
		tp := &topic{catching: map[*conn]*cursor{{}: {}}}
		for i := 0; i < maxBacklogEvents+10; i++ {
			tp.recordLocked(uint64(i), uint64(i+1), small, now)
		}
		if len(tp.backlog) != maxBacklogEvents || tp.backlogFrom != 10 {
			t.Fatalf("backlog %d events from %d", len(tp.backlog), tp.backlogFrom)
		}
	})
}
