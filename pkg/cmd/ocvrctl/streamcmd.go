package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ocvr/realtime/pkg/provision"
	"github.com/ocvr/realtime/pkg/stream"
)

// streamConfig is the event stream of the environment named by the global
// flags (--stream-name, --subject-prefix), checked as stream.Ensure checks it.
func streamConfig(a *app) (stream.Config, error) {
	cfg := stream.Config{Name: a.g.streamName, Prefix: a.subjects.Prefix()}
	if _, err := cfg.StreamConfig(); err != nil {
		return cfg, usageErrorf("--stream-name: %v", err)
	}
	return cfg, nil
}

// streamInfo prints the event stream's configuration and state.
func streamInfo(fs *flag.FlagSet) func(context.Context, *app) error {
	return func(ctx context.Context, a *app) error {
		cfg, err := streamConfig(a)
		if err != nil {
			return err
		}
		nc, err := a.conn()
		if err != nil {
			return err
		}
		js, err := provision.JetStream(ctx, nc) // in --jetstream-domain
		if err != nil {
			return err
		}
		s, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return withKind(errNotFound, fmt.Errorf("no stream %s: the gateways create it at start (unless --no-continuity), or run 'ocvrctl stream ensure'", cfg.Name))
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
		if a.g.json {
			a.emit(streamJSON(cfg, s.CachedInfo()), "")
			return nil
		}
		printStreamInfo(a, cfg, s.CachedInfo())
		return nil
	}
}

// streamEnsure creates the event stream, or updates it, as a gateway does
// at start.
func streamEnsure(fs *flag.FlagSet) func(context.Context, *app) error {
	window := fs.Duration("window", stream.DefaultWindow, "how long the stream keeps events (MaxAge): the continuity window; must equal the gateways' --continuity-window")
	replicas := fs.Int("replicas", 0, "`N` replicas, 1 to 5 (0: keep an existing stream's; a new one gets 3 where the JetStream cluster holds them, else 1)")
	maxBytes := fs.Int64("max-bytes", 0, "storage bound in `bytes`; when reached the oldest events go first (0: unlimited)")
	return func(ctx context.Context, a *app) error {
		cfg, err := streamConfig(a)
		if err != nil {
			return err
		}
		switch {
		case *window <= 0:
			return usageErrorf("--window must be positive")
		case *replicas < 0 || *replicas > 5:
			return usageErrorf("--replicas must be 0 (auto) to 5")
		case *maxBytes < 0:
			return usageErrorf("--max-bytes must not be negative (0: unlimited)")
		}
		cfg.Window, cfg.Replicas, cfg.MaxBytes = *window, *replicas, *maxBytes
		nc, err := a.conn()
		if err != nil {
			return err
		}
		info, err := stream.Ensure(ctx, nc, cfg)
		if err != nil {
			return err
		}
		sc := info.Config
		if a.g.json {
			a.emit(streamJSON(cfg, &jetstream.StreamInfo{Config: info.Config}), "")
			return nil
		}
		a.printf("stream %s ready: %d replica(s), window %s, max bytes %s, subjects %s",
			sc.Name, sc.Replicas, sc.MaxAge, byteLimit(sc.MaxBytes), strings.Join(sc.Subjects, " "))
		return nil
	}
}

func printStreamInfo(a *app, cfg stream.Config, si *jetstream.StreamInfo) {
	sc, st := si.Config, si.State
	row := func(k, format string, args ...any) { a.printf("%-13s %s", k+":", fmt.Sprintf(format, args...)) }
	row("stream", "%s", sc.Name)
	row("subjects", "%s", strings.Join(sc.Subjects, " "))
	if rp := sc.RePublish; rp != nil {
		row("republish", "%s -> %s", rp.Source, rp.Destination)
	} else {
		row("republish", "none: gateways receive nothing from this stream")
	}
	replicas := fmt.Sprintf("%d", sc.Replicas)
	if c := si.Cluster; c != nil && c.Leader != "" {
		peers := []string{"leader " + c.Leader}
		for _, p := range c.Replicas {
			state := "current"
			switch {
			case p.Offline:
				state = "offline"
			case !p.Current:
				state = fmt.Sprintf("behind by %d", p.Lag)
			}
			peers = append(peers, p.Name+" "+state)
		}
		replicas += " (" + strings.Join(peers, ", ") + ")"
	}
	row("replicas", "%s", replicas)
	row("storage", "%s", strings.ToLower(sc.Storage.String()))
	row("window", "%s (MaxAge)", sc.MaxAge)
	row("max bytes", "%s", byteLimit(sc.MaxBytes))
	row("duplicates", "%s (Nats-Msg-Id window)", sc.Duplicates)
	row("messages", "%d", st.Msgs)
	row("bytes", "%d (%s)", st.Bytes, humanBytes(st.Bytes))
	row("first seq", "%d", st.FirstSeq)
	row("last seq", "%d", st.LastSeq)
	if st.Msgs > 0 && !st.FirstTime.IsZero() {
		row("first event", "%s (%s ago)", st.FirstTime.UTC().Format(time.RFC3339), a.now().Sub(st.FirstTime).Round(time.Second))
		row("last event", "%s (%s ago)", st.LastTime.UTC().Format(time.RFC3339), a.now().Sub(st.LastTime).Round(time.Second))
	} else {
		row("first event", "none")
	}
	// What a gateway of this environment expects (subjects of the prefix,
	// direct reads); a stream of another prefix or made by hand shows here.
	want, _ := cfg.StreamConfig()
	var notes []string
	if !slices.Equal(sc.Subjects, want.Subjects) {
		notes = append(notes, fmt.Sprintf("its subjects are not those of prefix %q (%s)", cfg.Prefix, strings.Join(want.Subjects, " ")))
	}
	if !sc.AllowDirect {
		notes = append(notes, "direct get is off: gateways cannot read it back (resume, catch-up)")
	}
	if _, ok := sc.Metadata[stream.MetaResumeKey]; !ok {
		notes = append(notes, "no resume key in its metadata: a gateway adds one at start")
	}
	for _, n := range notes {
		row("note", "%s", n)
	}
}

func byteLimit(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d (%s)", n, humanBytes(uint64(n)))
}

// humanBytes renders n in binary units, e.g. 1.5 MiB.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// streamJSON is the --json result of stream info and ensure: the stream's
// configuration and state as JetStream reports them, and the notes of
// printStreamInfo.
func streamJSON(cfg stream.Config, si *jetstream.StreamInfo) any {
	sc := si.Config
	_, hasKey := sc.Metadata[stream.MetaResumeKey]
	sc.Metadata = nil // it holds the resume-token key: never printed
	want, _ := cfg.StreamConfig()
	var notes []string
	if !slices.Equal(sc.Subjects, want.Subjects) {
		notes = append(notes, fmt.Sprintf("its subjects are not those of prefix %q", cfg.Prefix))
	}
	if !sc.AllowDirect {
		notes = append(notes, "direct get is off")
	}
	if !hasKey {
		notes = append(notes, "no resume key in its metadata")
	}
	return struct {
		Config  jetstream.StreamConfig `json:"config"`
		State   jetstream.StreamState  `json:"state"`
		Cluster *jetstream.ClusterInfo `json:"cluster,omitempty"`
		Notes   []string               `json:"notes,omitempty"`
	}{sc, si.State, si.Cluster, notes}
}
