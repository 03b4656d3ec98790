package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"

	"github.com/ocvr/realtime/pkg/protocol"
)

// validation is the --json result of validate, one per frame.
type validation struct {
	Valid   bool   `json:"valid"`
	Type    string `json:"type,omitempty"`
	Subject string `json:"subject"`
	Bytes   int    `json:"bytes"`
	Line    int    `json:"line,omitempty"` // --lines: 1-based line of standard input
	Reason  string `json:"reason,omitempty"`
}

// validate checks frames as a gateway checks a message on their subject
// (protocol.ValidateEvent: the gateways' own code), without NATS.
func validate(fs *flag.FlagSet) func(context.Context, *app) error {
	tf := declareTarget(fs, "check as published on")
	tf.subject = fs.String("subject", "", "check as published on `SUBJECT`: a live subject (<prefix>.channel.<id>, <prefix>.user.<id>, <prefix>.broadcast) or a stream input (<prefix>.in.channel.<id>, <prefix>.in.user.<id>)")
	frame := fs.String("frame", "-", "the frame, `JSON`; - (the default): read it from standard input")
	lines := fs.Bool("lines", false, "standard input holds one frame per line (JSON lines): check each, one result per line")
	return func(ctx context.Context, a *app) error {
		t, err := tf.resolve(a, true)
		if err != nil {
			return err
		}
		if *lines && *frame != "-" {
			return usageErrorf("--lines reads standard input: give it without --frame")
		}
		if !*lines {
			payload, err := readFrame(a, *frame)
			if err != nil {
				return err
			}
			if _, err := check(a, t, payload, 0); err != nil {
				return withKind(errRefused, fmt.Errorf("the gateways would refuse the frame: %w", err))
			}
			return nil
		}
		if interactive(a.in) {
			return usageErrorf("--lines reads frames from standard input: pipe them in")
		}
		sc := bufio.NewScanner(a.in)
		sc.Buffer(make([]byte, 0, 64<<10), protocol.MaxEventSize+1024) // longer lines fail the size rule
		refused, n := 0, 0
		for line := 1; sc.Scan(); line++ {
			payload := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
			if len(bytes.TrimSpace(payload)) == 0 {
				continue
			}
			n++
			if _, err := check(a, t, payload, line); err != nil {
				refused++
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read standard input after %d frame(s): %w", n, err)
		}
		if n == 0 {
			return usageErrorf("no frame on standard input")
		}
		if refused > 0 {
			return withKind(errRefused, fmt.Errorf("%d of %d frame(s) refused", refused, n))
		}
		return nil
	}
}

// check validates one frame and reports it on stdout.
func check(a *app, t target, payload []byte, line int) (string, error) {
	typ, err := protocol.ValidateEvent(t.scope, t.channelID, payload)
	v := validation{Valid: err == nil, Type: typ, Subject: t.subject, Bytes: len(payload), Line: line}
	at := ""
	if line > 0 {
		at = fmt.Sprintf("line %d: ", line)
	}
	if err != nil {
		v.Reason = err.Error()
		a.emit(v, "%srefused on %s: %v", at, t.subject, oneLine(err.Error()))
		return "", err
	}
	a.emit(v, "%svalid: %s on %s (%d bytes)", at, oneLine(typ), t.subject, len(payload))
	return typ, nil
}
