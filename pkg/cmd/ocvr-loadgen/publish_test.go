package main

import "testing"

func TestFrameSeq(t *testing.T) {
	for f, want := range map[string]uint64{
		`{"type":"message_create","data":{"id":"b0_1_2","channel_id":"c"},"channel_id":"c","seq":1042}`: 1042,
		`{"type":"notification","data":{"id":"n"},"seq":7}`:                                             7,
		`{"type":"message_create","data":{"id":"b0_1_2","channel_id":"c"}}`:                             0, // core: no position
		`{"type":"subscribed","data":{"channel_id":"c","seq":5,"resumed":true}}`:                        0, // not an event's position
		`{"type":"message_create","data":{"content":",\"seq\":9"},"seq":x}`:                             0,
	} {
		if got := frameSeq([]byte(f)); got != want {
			t.Errorf("frameSeq(%s) = %d, want %d", f, got, want)
		}
	}
}

func TestParseEventID(t *testing.T) {
	st, n, ts, ok := parseEventID([]byte(`{"type":"message_create","data":{"id":"b3_41_1700000000000000000","channel_id":"c"},"seq":2}`))
	if !ok || st != 3 || n != 41 || ts != 1700000000000000000 {
		t.Fatalf("got %d %d %d %v", st, n, ts, ok)
	}
	if _, _, _, ok := parseEventID([]byte(`{"type":"message_create","data":{"id":"c12"}}`)); ok {
		t.Fatal("a churn id parsed as a loadgen event")
	}
	m := loadEvent("ch", 2, 5, "")
	st, n, _, ok = parseEventID([]byte(`{"data":{"id":"` + m.ID + `"}}`))
	if !ok || st != 2 || n != 5 {
		t.Fatalf("loadEvent id %q parsed as %d %d %v", m.ID, st, n, ok)
	}
}

func TestParsePaths(t *testing.T) {
	if p, err := parsePaths("both", true); err != nil || len(p) != 2 {
		t.Fatalf("both: %v %v", p, err)
	}
	if _, err := parsePaths("both", false); err == nil {
		t.Fatal("both accepted where one path is expected")
	}
	if _, err := parsePaths("jetstream", true); err == nil {
		t.Fatal("unknown path accepted")
	}
}
