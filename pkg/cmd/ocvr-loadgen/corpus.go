package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/ocvr/realtime/pkg/protocol"
)

// A chat corpus is what the compression workload publishes: varied
// message_create and notification events of 150–600 bytes made from word
// lists, names, ids, links and attachments — text that compresses as chat
// does, not padding that compresses to nothing. It is deterministic (one
// seed), so two runs publish the same bytes.

// corpusEvent is a message_create for the channel or, when notify is set,
// a notification for one subscriber.
type corpusEvent struct {
	notify bool
	msg    protocol.MessageCreate
	note   protocol.Notification
}

// Frame sizes the corpus keeps (the frame as the gateway sends it, less
// the stream position it adds).
const (
	corpusMinFrame = 150
	corpusMaxFrame = 600
)

var (
	corpusNames = []string{"Mira Okafor", "Jonas Berg", "Aiko Tanaka", "Lucía Fernández", "Dev Patel", "Noor Haddad",
		"Sam O'Neill", "Chen Wei", "Fatima Zahra", "Ola Nordmann", "Kwame Mensah", "Isabela Costa", "Yuki", "xXsniperXx",
		"Lena Vogel", "Arjun", "Marta Kowalska", "Theo", "Priya Raman", "Diego", "Hana Kim", "Oskar", "Zoe Laurent", "Rafael"}
	corpusOpeners = []string{"hey", "ok so", "lol", "wait", "honestly", "quick question:", "heads up,", "gg,", "omg", "btw", "yo", "hmm"}
	corpusPhrases = []string{
		"are we still meeting in the lobby at %d?", "I'll bring the new headset so we can test hand tracking",
		"the %s map keeps crashing on my Quest when more than %d people join", "can someone invite me to the party again",
		"who's up for a round of %s tonight", "just hit level %d, finally unlocked the %s skin",
		"my mic was muted the whole time, sorry", "the update broke the teleport button for me",
		"check this out: https://clips.ocvr.example/%s", "I think the server in %s is lagging again",
		"thanks for the help earlier!", "can we move the scrim to %d:30", "I left my avatar stuck in the wall again 😂",
		"does anyone know how to reset the guardian boundary", "new world drop is live, link in the pins",
		"ping me when you're online", "we need one more for the %s tournament", "brb dinner", "that was insane 🔥🔥",
		"the dungeon boss took %d tries, worth it", "recording the session, say hi", "who took my spot in the queue",
		"is the %s event on saturday or sunday", "pls don't spawn the giant rubber duck again", "ok I'm in, give me %d min",
	}
	corpusWorlds  = []string{"Neon Harbor", "Sky Citadel", "Glass Forest", "Rust Yard", "Echo Lake", "Orbit Station", "Lantern Bay"}
	corpusRegions = []string{"Frankfurt", "Virginia", "Tokyo", "São Paulo", "Sydney", "Mumbai"}
	corpusKinds   = []string{"friend_request", "party_invite", "mention", "achievement", "world_update"}
)

// chatCorpus returns n events of realistic chat traffic; notify is the
// share of notifications (the rest are channel messages), userIDs the
// users they can be about.
func chatCorpus(n int, notify float64, channel string, seed uint64) []corpusEvent {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]corpusEvent, 0, n)
	for len(out) < n {
		var ev corpusEvent
		var frame []byte
		if r.Float64() < notify {
			ev = corpusEvent{notify: true, note: corpusNote(r)}
			frame = protocol.MustEncode(protocol.TypeNotification, ev.note)
		} else {
			ev = corpusEvent{msg: corpusMessage(r, channel)}
			frame = protocol.MustEncode(protocol.TypeMessageCreate, ev.msg)
		}
		if len(frame) >= corpusMinFrame && len(frame) <= corpusMaxFrame {
			out = append(out, ev)
		}
	}
	return out
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// corpusSentence is one chat line with its blanks filled: %d a number,
// %s a place (or a clip id in a link).
func corpusSentence(r *rand.Rand) string {
	p := pick(r, corpusPhrases)
	var args []any
	for i := 0; i+1 < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		switch {
		case p[i+1] == 'd':
			args = append(args, 2+r.IntN(97))
		case strings.HasSuffix(p[:i], "/"):
			args = append(args, strconv.FormatUint(r.Uint64(), 36))
		case r.IntN(2) == 0:
			args = append(args, pick(r, corpusWorlds))
		default:
			args = append(args, pick(r, corpusRegions))
		}
	}
	return fmt.Sprintf(p, args...)
}

func corpusMessage(r *rand.Rand, channel string) protocol.MessageCreate {
	var b strings.Builder
	if r.IntN(3) == 0 {
		b.WriteString(pick(r, corpusOpeners) + " ")
	}
	for s := 1 + r.IntN(4); s > 0; s-- {
		b.WriteString(corpusSentence(r))
		if s > 1 {
			b.WriteString(pick(r, []string{" ", ". ", "! ", " — ", "\n"}))
		}
	}
	if r.IntN(5) == 0 {
		b.WriteString(" @" + strings.Fields(pick(r, corpusNames))[0])
	}
	author := r.IntN(len(corpusNames))
	m := protocol.MessageCreate{
		ID:        "msg_" + strconv.FormatUint(r.Uint64()>>8, 36),
		ChannelID: channel,
		Author:    protocol.Author{ID: int64(40000 + author*137), DisplayName: corpusNames[author]},
		Content:   b.String(),
		CreatedAt: 1765104000 + int64(r.IntN(86400)),
	}
	if r.IntN(6) == 0 {
		att, _ := json.Marshal(map[string]any{
			"id": "att_" + strconv.FormatUint(r.Uint64()>>16, 36), "type": pick(r, []string{"image", "clip", "file"}),
			"url":      "https://cdn.ocvr.example/a/" + strconv.FormatUint(r.Uint64(), 16) + pick(r, []string{".png", ".jpg", ".mp4", ".zip"}),
			"size":     1000 + r.IntN(9_000_000),
			"filename": strings.ReplaceAll(strings.ToLower(pick(r, corpusWorlds)), " ", "_") + "_" + strconv.Itoa(r.IntN(999)),
		})
		m.Attachments = []json.RawMessage{att}
	}
	return m
}

func corpusNote(r *rand.Rand) protocol.Notification {
	from := pick(r, corpusNames)
	fromID := 40000 + r.IntN(len(corpusNames))*137
	n := protocol.Notification{ID: "notif_" + strconv.FormatUint(r.Uint64()>>8, 36), Type: pick(r, corpusKinds), CreatedAt: 1765104000 + int64(r.IntN(86400))}
	var data map[string]any
	switch n.Type {
	case "friend_request":
		n.Title, n.Body = "New Friend Request", from+" wants to be your friend"
		data = map[string]any{"from_user_id": fromID}
	case "party_invite":
		w := pick(r, corpusWorlds)
		n.Title, n.Body = "Party invite", from+" invited you to join their party in "+w
		data = map[string]any{"from_user_id": fromID, "party_id": "pty_" + strconv.FormatUint(r.Uint64()>>20, 36), "world": w, "slots": 1 + r.IntN(7)}
	case "mention":
		n.Title, n.Body = from+" mentioned you", corpusSentence(r)
		data = map[string]any{"channel_id": "ch_" + strconv.FormatUint(r.Uint64()>>40, 36), "message_id": "msg_" + strconv.FormatUint(r.Uint64()>>8, 36)}
	case "achievement":
		n.Title, n.Body = "Achievement unlocked", "You finished "+pick(r, corpusWorlds)+" in under "+strconv.Itoa(3+r.IntN(40))+" minutes"
		data = map[string]any{"achievement_id": "ach_" + strconv.Itoa(r.IntN(500)), "points": 10 * (1 + r.IntN(20))}
	default:
		w := pick(r, corpusWorlds)
		n.Title, n.Body = w+" was updated", "Version "+strconv.Itoa(1+r.IntN(9))+"."+strconv.Itoa(r.IntN(30))+": "+corpusSentence(r)
		data = map[string]any{"world": w, "changelog_url": "https://worlds.ocvr.example/" + strconv.FormatUint(r.Uint64(), 36)}
	}
	n.Data, _ = json.Marshal(data)
	return n
}
