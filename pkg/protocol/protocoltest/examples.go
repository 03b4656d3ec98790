// Package protocoltest gives tests the protocol's example frames:
// pkg/protocol/testdata/frames.json, the one table that the protocol docs,
// the Go tests and the TypeScript tests share. Its "document" entries are
// the protocol document's own examples, byte for byte once compacted.
package protocoltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Example is one entry of frames.json.
type Example struct {
	Direction string `json:"direction"` // "client" or "server"
	Name      string `json:"name"`
	// Document: the frame is verbatim from the protocol document.
	Document bool `json:"document,omitempty"`
	// Extra: the frame has fields or a type that no Go type of
	// pkg/protocol knows (the gateway delivers it byte for byte all the same).
	Extra bool `json:"extra,omitempty"`
	// Subject: "channel" or "user", the kind of bus subject a backend
	// publishes the event on; empty for frames only the gateway sends.
	Subject string `json:"subject,omitempty"`
	// Positioned: the frame as a client receives an event of the stream,
	// with the position the gateway adds (top-level channel_id and seq,
	// DESIGN.md §2a); no backend publishes it so.
	Positioned bool            `json:"positioned,omitempty"`
	Frame      json.RawMessage `json:"frame"`
}

// Wire is the example's frame as it travels: compacted.
func (e Example) Wire() []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, e.Frame); err != nil {
		panic(fmt.Sprintf("protocoltest: %s: %v", e.Name, err)) // Load checked it
	}
	return buf.Bytes()
}

// Type is the frame's type.
func (e Example) Type() string {
	var f struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(e.Frame, &f)
	return f.Type
}

// ChannelID is the frame's data.channel_id, "" if none.
func (e Example) ChannelID() string {
	var f struct {
		Data struct {
			ChannelID string `json:"channel_id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(e.Frame, &f)
	return f.Data.ChannelID
}

// Path is the file of the examples.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "frames.json")
}

// Load reads every example.
func Load() ([]Example, error) {
	raw, err := os.ReadFile(Path())
	if err != nil {
		return nil, fmt.Errorf("read examples: %w", err)
	}
	var exs []Example
	if err := json.Unmarshal(raw, &exs); err != nil {
		return nil, fmt.Errorf("parse %s: %w", Path(), err)
	}
	if len(exs) == 0 {
		return nil, fmt.Errorf("%s holds no examples", Path())
	}
	for _, ex := range exs {
		if !json.Valid(ex.Frame) {
			return nil, fmt.Errorf("%s: example %q is not JSON", Path(), ex.Name)
		}
	}
	return exs, nil
}

// Examples is Load for a test: it fails the test on error.
func Examples(t testing.TB) []Example {
	t.Helper()
	exs, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return exs
}
