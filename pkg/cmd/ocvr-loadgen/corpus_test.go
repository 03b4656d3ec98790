package main

import (
	"bytes"
	"compress/flate"
	"testing"

	"github.com/ocvr/realtime/pkg/protocol"
)

// TestChatCorpus: the corpus is varied chat of 150–600-byte frames, both
// kinds, the same for the same seed — and not padding: each frame on its
// own compresses no better than chat does (above 40% of its size).
func TestChatCorpus(t *testing.T) {
	a, b := chatCorpus(2000, 0.2, "ch_bench", 7), chatCorpus(2000, 0.2, "ch_bench", 7)
	seen := map[string]bool{}
	notes := 0
	var raw, packed int
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, 6)
	for i, ev := range a {
		f := protocol.MustEncode(protocol.TypeMessageCreate, ev.msg)
		if ev.notify {
			f = protocol.MustEncode(protocol.TypeNotification, ev.note)
			notes++
		}
		if len(f) < corpusMinFrame || len(f) > corpusMaxFrame {
			t.Fatalf("frame %d: %d bytes", i, len(f))
		}
		if fb := protocol.MustEncode(protocol.TypeMessageCreate, b[i].msg); ev.notify != b[i].notify || (!ev.notify && !bytes.Equal(fb, f)) {
			t.Fatalf("frame %d differs between two corpora of one seed", i)
		}
		seen[string(f)] = true
		z.Reset()
		w.Reset(&z)
		_, _ = w.Write(f)
		_ = w.Flush()
		raw, packed = raw+len(f), packed+z.Len()
	}
	if len(seen) < 1990 || notes < 300 || notes > 500 {
		t.Fatalf("%d distinct frames, %d notifications", len(seen), notes)
	}
	if ratio := float64(packed) / float64(raw); ratio < 0.4 || ratio > 0.9 {
		t.Fatalf("frames compress alone to %.2f of their size: not chat", ratio)
	}
	t.Logf("one frame at a time, deflate level 6: %.3f of %d bytes (mean frame %d bytes)", float64(packed)/float64(raw), raw, raw/len(a))
}
