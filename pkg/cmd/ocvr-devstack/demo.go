package main

// The demo web server of the dev stack: the demo chat page (pkg/js/demo)
// with the TypeScript client (pkg/js/dist), plus a tiny JSON API that plays
// the parts of the platform the real-time layer does not own: sign-in,
// sending chat messages, friends.
//
// DEVELOPMENT ONLY. /demo-api/sign-in hands out a session for any user id
// without a password; /demo-api/messages lets any signed-in user post to a
// channel. They exist so `make run` can show the client in a browser, and
// must never be exposed or copied into a production service: the server
// refuses to listen on anything but a loopback address, and refuses
// cross-site requests.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/directory"
	"github.com/ocvr/realtime/pkg/internal/kvutil"
	"github.com/ocvr/realtime/pkg/presence"
	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
)

// errDemoListen wraps a failure to listen on --demo-addr (port in use).
var errDemoListen = errors.New("demo server cannot listen")

// demoSessionTTL is how long a demo sign-in stays valid.
const demoSessionTTL = 12 * time.Hour

// demoChannel is the channel every demo user joins at sign-in.
const demoChannel = "ch_general"

// demoConfig is what the page needs to connect (GET /demo-api/config).
type demoConfig struct {
	TicketURL string     `json:"ticket_url"`
	WSURLs    []string   `json:"ws_urls"`
	Users     []demoUser `json:"demo_users"`
	DevOnly   string     `json:"dev_only"`
}

type demoUser struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type demoServer struct {
	cfg      demoConfig
	dir      string // the client package: demo/ and dist/ below it
	sessions *session.Store
	direct   *directory.Store
	presence *presence.Store
	pub      *bus.Publisher

	mu    sync.Mutex
	names map[int64]string // display names seen at sign-in, for friend lists
}

// startDemo starts the demo server on addr (a loopback address) serving
// the client package in dir. It returns the server to shut down.
func startDemo(ctx context.Context, addr, dir string, nc *nats.Conn, cfg demoConfig) (*http.Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--demo-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--demo-addr %q: the demo server is a development convenience and listens on loopback addresses only", addr)
	}
	s, err := newDemoServer(ctx, dir, nc, cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDemoListen, err)
	}
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "ocvr-devstack: demo server:", err)
		}
	}()
	return srv, nil
}

func newDemoServer(ctx context.Context, dir string, nc *nats.Conn, cfg demoConfig) (*demoServer, error) {
	subjects, _ := bus.NewSubjects("")
	pub := bus.NewPublisher(nc, subjects)
	s := &demoServer{cfg: cfg, dir: dir, pub: pub, names: map[int64]string{}}
	for _, u := range cfg.Users {
		s.names[u.ID] = u.Name
	}
	var err error
	if s.sessions, err = session.Open(ctx, nc, "", pub); err != nil {
		return nil, err
	}
	if s.direct, err = directory.Open(ctx, nc); err != nil {
		return nil, err
	}
	if s.presence, err = presence.Open(ctx, nc, "", s.direct, pub); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *demoServer) routes() http.Handler {
	mux := http.NewServeMux()
	files := http.FileServer(http.Dir(s.dir))
	mux.Handle("GET /demo/", files)
	mux.HandleFunc("GET /dist/", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(filepath.Join(s.dir, "dist", "index.js")); err != nil {
			http.Error(w, "the client is not built: run `npm ci && npm run build` in pkg/js (or scripts/test-js.sh)", http.StatusNotFound)
			return
		}
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		target := "/demo/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery // keep ?ws=… and ?ticket=…
		}
		http.Redirect(w, r, target, http.StatusFound)
	})
	mux.HandleFunc("GET /demo-api/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.cfg)
	})
	mux.HandleFunc("POST /demo-api/sign-in", s.signIn)
	mux.HandleFunc("POST /demo-api/sign-out", s.signOut)
	mux.HandleFunc("GET /demo-api/friends", s.friends)
	mux.HandleFunc("POST /demo-api/messages", s.sendMessage)
	mux.HandleFunc("POST /demo-api/poke", s.poke)
	return sameOrigin(noCache(mux))
}

// sameOrigin refuses requests a page of another site makes to this server
// (a browser sends Origin on cross-origin requests and on every POST).
func sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || u.Host != r.Host {
				apiError(w, http.StatusForbidden, "FORBIDDEN", "cross-origin requests are refused")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func noCache(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

type signInRequest struct {
	UserID      int64  `json:"user_id"`
	DisplayName string `json:"display_name"`
}

type friendInfo struct {
	UserID      int64  `json:"user_id"`
	DisplayName string `json:"display_name"`
	Online      bool   `json:"online"`
	StatusText  string `json:"status_text"`
}

type signInResponse struct {
	Token       string       `json:"token"`
	SessionID   string       `json:"session_id"`
	UserID      int64        `json:"user_id"`
	DisplayName string       `json:"display_name"`
	Channels    []string     `json:"channels"`
	Friends     []friendInfo `json:"friends"`
	DevOnly     string       `json:"dev_only"`
}

const devOnlyNote = "development only: this endpoint signs in anyone without a password"

// signIn creates a session for any user id (DEVELOPMENT ONLY) and makes the
// user a member of ch_general, so a new demo user can chat at once.
func (s *demoServer) signIn(w http.ResponseWriter, r *http.Request) {
	var req signInRequest
	if !decode(w, r, &req) {
		return
	}
	req.DisplayName = strings.TrimSpace(req.DisplayName)
	if err := protocol.CheckUserID(req.UserID); err != nil {
		apiError(w, http.StatusBadRequest, "INVALID_REQUEST", "user_id must be a positive integer")
		return
	}
	if req.DisplayName == "" || len(req.DisplayName) > 64 || !utf8.ValidString(req.DisplayName) {
		apiError(w, http.StatusBadRequest, "INVALID_REQUEST", "display_name must be 1–64 bytes of UTF-8")
		return
	}
	ctx := r.Context()
	if ok, err := s.direct.ChannelExists(ctx, demoChannel); err == nil && ok {
		if err := s.direct.AddMember(ctx, demoChannel, req.UserID); err != nil {
			internalError(w, err)
			return
		}
	}
	token, sess, err := s.sessions.Create(ctx, req.UserID, req.DisplayName, demoSessionTTL)
	if err != nil {
		internalError(w, err)
		return
	}
	s.mu.Lock()
	s.names[req.UserID] = req.DisplayName
	s.mu.Unlock()
	channels, err := s.direct.ChannelsOf(ctx, req.UserID)
	if err != nil {
		internalError(w, err)
		return
	}
	sort.Strings(channels)
	friends, err := s.friendList(ctx, req.UserID)
	if err != nil {
		internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, signInResponse{
		Token: token, SessionID: sess.ID, UserID: sess.UserID, DisplayName: sess.DisplayName,
		Channels: channels, Friends: friends, DevOnly: devOnlyNote,
	})
}

// signOut revokes the caller's session: its sockets get session_revoked and
// close with 4003.
func (s *demoServer) signOut(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.auth(w, r)
	if !ok {
		return
	}
	if err := s.sessions.Revoke(r.Context(), sess.ID, "logout"); err != nil && !errors.Is(err, session.ErrNotFound) {
		internalError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *demoServer) friends(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.auth(w, r)
	if !ok {
		return
	}
	friends, err := s.friendList(r.Context(), sess.UserID)
	if err != nil {
		internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"friends": friends})
}

func (s *demoServer) friendList(ctx context.Context, userID int64) ([]friendInfo, error) {
	ids, err := s.direct.Friends(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]friendInfo, 0, len(ids))
	for _, id := range ids {
		p, err := s.presence.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		name := s.names[id]
		s.mu.Unlock()
		if name == "" {
			name = "User " + strconv.FormatInt(id, 10)
		}
		out = append(out, friendInfo{UserID: id, DisplayName: name, Online: p.Online, StatusText: p.StatusText})
	}
	return out, nil
}

type sendRequest struct {
	ChannelID string `json:"channel_id"`
	Content   string `json:"content"`
}

// sendMessage plays the chat backend: it checks the session and the
// membership, then publishes message_create to the channel.
func (s *demoServer) sendMessage(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.auth(w, r)
	if !ok {
		return
	}
	var req sendRequest
	if !decode(w, r, &req) {
		return
	}
	if !protocol.ValidChannelID(req.ChannelID) {
		apiError(w, http.StatusBadRequest, "INVALID_REQUEST", "invalid channel_id")
		return
	}
	req.Content = strings.TrimSpace(req.Content)
	if req.Content == "" || len(req.Content) > 2000 || !utf8.ValidString(req.Content) {
		apiError(w, http.StatusBadRequest, "INVALID_REQUEST", "content must be 1–2000 bytes of UTF-8")
		return
	}
	ctx := r.Context()
	member, err := s.direct.IsMember(ctx, req.ChannelID, sess.UserID)
	if err != nil {
		internalError(w, err)
		return
	}
	if !member {
		apiError(w, http.StatusForbidden, "NOT_MEMBER", "not a member of this channel")
		return
	}
	m := protocol.MessageCreate{
		ID:        kvutil.RandomToken("msg_", 12),
		ChannelID: req.ChannelID,
		Author:    protocol.Author{ID: sess.UserID, DisplayName: sess.DisplayName},
		Content:   req.Content,
		CreatedAt: time.Now().Unix(),
	}
	if err := s.pub.MessageCreated(ctx, m); err != nil {
		internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": m})
}

type pokeRequest struct {
	UserID int64 `json:"user_id"`
}

// poke sends a notification to a friend.
func (s *demoServer) poke(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.auth(w, r)
	if !ok {
		return
	}
	var req pokeRequest
	if !decode(w, r, &req) {
		return
	}
	if err := protocol.CheckUserID(req.UserID); err != nil {
		apiError(w, http.StatusBadRequest, "INVALID_REQUEST", "user_id must be a positive integer")
		return
	}
	n := protocol.Notification{
		ID:        kvutil.RandomToken("notif_", 12),
		Type:      "poke",
		Title:     sess.DisplayName + " poked you",
		Body:      "A friendly poke from the demo page.",
		CreatedAt: time.Now().Unix(),
		// The kind's own object, as the document's friend_request carries it.
		Data: json.RawMessage(`{"from_user_id":` + strconv.FormatInt(sess.UserID, 10) + `}`),
	}
	if err := s.pub.Notify(r.Context(), req.UserID, n); err != nil {
		internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": n})
}

// auth verifies the bearer session of a request.
func (s *demoServer) auth(w http.ResponseWriter, r *http.Request) (session.Session, bool) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sess, err := s.sessions.Verify(r.Context(), token)
	if errors.Is(err, session.ErrUnauthorized) {
		apiError(w, http.StatusUnauthorized, "UNAUTHORIZED", "sign in again")
		return sess, false
	}
	if err != nil {
		internalError(w, err)
		return sess, false
	}
	return sess, true
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		apiError(w, http.StatusBadRequest, "INVALID_REQUEST", "body must be a JSON object")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func internalError(w http.ResponseWriter, err error) {
	slog.Error("demo server", "err", err)
	apiError(w, http.StatusInternalServerError, "INTERNAL", err.Error())
}
