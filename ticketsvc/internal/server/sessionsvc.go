package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/ocvr/realtime/pkg/protocol"
	"github.com/ocvr/realtime/pkg/session"
)

// The session service: request/reply over NATS, so that a backend in any
// language creates and revokes sessions with a plain NATS request and gets
// exactly what session.Store does in Go — the KV records and the
// session_revoked event together. (Publishing session_revoked alone closes
// the sockets but leaves the session valid: the client gets a new ticket.)
// Every ticketsvc replica serves it in one queue group; it is a NATS micro
// service ("ocvr-sessions"), so `nats micro ls` and $SRV.PING find it.
//
// Subjects, under the --subject-prefix:
//
//	<prefix>.svc.sessions.create       {"user_id":42,"display_name":"Ada","ttl_seconds":86400}
//	<prefix>.svc.sessions.revoke       {"session_id":"ses_…","reason":"logout"}
//	<prefix>.svc.sessions.revoke_user  {"user_id":42,"except_session_id":"ses_…","reason":"logout_all"}
//
// Replies are JSON: {"data":{…}} on success, {"error":{"code","message"}}
// otherwise (the HTTP API's error shape), with the micro error headers
// (Nats-Service-Error-Code 400, 404 or 503) set too.
const (
	SessionServiceName = "ocvr-sessions"
	sessionServiceVer  = "1.0.0"

	// Request bodies are small; a bigger one is refused before decoding.
	maxSessionRequest = 4 << 10
	// revokeUserTimeout bounds a revoke_user: it lists and purges every
	// session of the user, more KV work than one request of the HTTP API.
	revokeUserTimeout = 15 * time.Second
	// maxSessionTTL bounds a created session's lifetime.
	maxSessionTTL = 400 * 24 * time.Hour
)

// SessionSubject is the subject of one operation of the session service.
func SessionSubject(prefix, op string) string { return prefix + ".svc.sessions." + op }

// SessionCreated is the data of a create reply. The token is shown once
// (only its hash is stored): hand it to the client.
type SessionCreated struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	UserID    int64  `json:"user_id"`
	ExpiresAt int64  `json:"expires_at"` // unix seconds
}

// SessionsRevoked is the data of a revoke or revoke_user reply.
type SessionsRevoked struct {
	Revoked int `json:"revoked"`
}

// Codes of the session service's errors (besides CodeNotFound and
// CodeUnavailable of the HTTP API).
const CodeInvalidRequest = "INVALID_REQUEST"

// svcError is a refusal with its code and the micro status.
type svcError struct {
	status  string // micro's Nats-Service-Error-Code: 400, 404, 503
	code    string
	message string
}

func (e *svcError) Error() string { return e.code + ": " + e.message }

func badRequest(format string, args ...any) *svcError {
	return &svcError{status: "400", code: CodeInvalidRequest, message: fmt.Sprintf(format, args...)}
}

// startSessionService adds the session service on nc. It answers 503
// UNAVAILABLE until the stores are open.
func (s *Server) startSessionService(ctx context.Context, nc *nats.Conn) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        SessionServiceName,
		Version:     sessionServiceVer,
		Description: "OCVR sessions: create and revoke, the KV records and the session_revoked event together",
	})
	if err != nil {
		return nil, fmt.Errorf("session service: %w", err)
	}
	ops := []struct {
		name string
		run  func(context.Context, *session.Store, []byte) (any, error)
	}{
		{"create", s.createSession},
		{"revoke", s.revokeSession},
		{"revoke_user", s.revokeUser},
	}
	for _, op := range ops {
		h := micro.ContextHandler(ctx, func(ctx context.Context, req micro.Request) {
			s.answer(ctx, req, op.name, op.run)
		})
		if err := svc.AddEndpoint(op.name, h, micro.WithEndpointSubject(SessionSubject(s.cfg.SubjectPrefix, op.name))); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("session service: %s: %w", op.name, err)
		}
	}
	return svc, nil
}

func (s *Server) answer(ctx context.Context, req micro.Request, op string, run func(context.Context, *session.Store, []byte) (any, error)) {
	var (
		data any
		err  error
	)
	st := s.stores.Load()
	switch {
	case s.shutting.Load() || st == nil:
		err = &svcError{status: "503", code: CodeUnavailable, message: "session store not available yet; retry"}
	case len(req.Data()) > maxSessionRequest:
		err = badRequest("request is larger than %d bytes", maxSessionRequest)
	default:
		data, err = run(ctx, st.sessions, req.Data())
	}
	if err == nil {
		_ = req.RespondJSON(struct {
			Data any `json:"data"`
		}{data})
		return
	}
	var se *svcError
	switch {
	case errors.As(err, &se):
	case errors.Is(err, session.ErrNotFound):
		se = &svcError{status: "404", code: CodeNotFound, message: "no such session"}
	default:
		s.log.Warn("session service: store error", "op", op, "err", err)
		se = &svcError{status: "503", code: CodeUnavailable, message: "session store unavailable; retry"}
	}
	body, _ := json.Marshal(ErrorResponse{Error: ErrorBody{Code: se.code, Message: se.message}})
	_ = req.Error(se.status, se.message, body)
}

// decode reads a request body into v, refusing unknown fields (a typo such
// as "sesion_id" must not revoke every session of a user by omission).
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body is not the expected JSON object: %v", err)
	}
	if dec.More() {
		return badRequest("body has data after the JSON object")
	}
	return nil
}

func checkReason(r string) (string, error) {
	if len(r) > 128 || !utf8.ValidString(r) {
		return "", badRequest(`"reason" must be at most 128 bytes of UTF-8`)
	}
	return r, nil
}

func (s *Server) createSession(ctx context.Context, st *session.Store, body []byte) (any, error) {
	var req struct {
		UserID      json.RawMessage `json:"user_id"`
		DisplayName string          `json:"display_name"`
		TTLSeconds  int64           `json:"ttl_seconds"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	uid, err := protocol.ParseUserID(string(req.UserID)) // digits only: a JSON integer, not "42"
	if err != nil {
		return nil, badRequest(`"user_id" must be a positive integer`)
	}
	if req.DisplayName == "" || len(req.DisplayName) > 128 || !utf8.ValidString(req.DisplayName) {
		return nil, badRequest(`"display_name" must be 1-128 bytes of UTF-8`)
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	if req.TTLSeconds < 1 || ttl > maxSessionTTL {
		return nil, badRequest(`"ttl_seconds" must be 1 to %d`, int64(maxSessionTTL/time.Second))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.KVTimeout)
	defer cancel()
	token, sess, err := st.Create(ctx, uid, req.DisplayName, ttl)
	if err != nil {
		return nil, err
	}
	s.log.Info("session created", "session_id", sess.ID, "user_id", sess.UserID)
	return SessionCreated{Token: token, SessionID: sess.ID, UserID: sess.UserID, ExpiresAt: sess.ExpiresAt.Unix()}, nil
}

func (s *Server) revokeSession(ctx context.Context, st *session.Store, body []byte) (any, error) {
	var req struct {
		SessionID string `json:"session_id"`
		Reason    string `json:"reason"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if !protocol.ValidSessionID(req.SessionID) {
		return nil, badRequest(`"session_id" must be a session id (ses_…, %s), not a token`, protocol.IDPattern)
	}
	reason, err := checkReason(req.Reason)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "revoked"
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.KVTimeout)
	defer cancel()
	if err := st.Revoke(ctx, req.SessionID, reason); err != nil {
		return nil, err
	}
	s.log.Info("session revoked", "session_id", req.SessionID, "reason", reason)
	return SessionsRevoked{Revoked: 1}, nil
}

func (s *Server) revokeUser(ctx context.Context, st *session.Store, body []byte) (any, error) {
	var req struct {
		UserID          json.RawMessage `json:"user_id"`
		ExceptSessionID string          `json:"except_session_id"`
		Reason          string          `json:"reason"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	uid, err := protocol.ParseUserID(string(req.UserID)) // digits only: a JSON integer, not "42"
	if err != nil {
		return nil, badRequest(`"user_id" must be a positive integer`)
	}
	if req.ExceptSessionID != "" && !protocol.ValidSessionID(req.ExceptSessionID) {
		return nil, badRequest(`"except_session_id" must be a session id (ses_…)`)
	}
	reason, err := checkReason(req.Reason)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "logout_all"
	}
	ctx, cancel := context.WithTimeout(ctx, revokeUserTimeout)
	defer cancel()
	n, err := st.RevokeAll(ctx, uid, reason, req.ExceptSessionID)
	if err != nil {
		return nil, err
	}
	s.log.Info("sessions of user revoked", "user_id", uid, "revoked", n, "except_session_id", req.ExceptSessionID, "reason", reason)
	return SessionsRevoked{Revoked: n}, nil
}
