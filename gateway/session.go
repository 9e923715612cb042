package gateway

import (
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// Gateway sessions (README "Sessions"): the sealed Mcp-Session-Id binds the
// backend, the subject (issuer and sub) and the agent, and carries the time
// it was issued. A presented id is usable only when it opens, matches all
// three, is younger than server.session_max_age (checked from the sealed
// time, so on every replica) and has been used on this replica within
// server.session_idle_timeout (kept in memory per replica: the id itself is
// stateless and clients keep the one they got at initialize). Anything else
// is an unknown session, 404, whatever the reason, so a caller learns
// nothing about a session that is not theirs.

// openSession returns the session sealed in id when the caller may use it.
func (g *Gateway) openSession(id, backend, subject, agent string) (upstream.Session, bool) {
	s, err := g.opts.Sealer.Open(id)
	if err != nil || s.Backend != backend || s.Subject != subject || s.Agent != agent {
		return upstream.Session{}, false
	}
	now := g.now()
	if s.Expired(now, g.server.SessionLifetime()) {
		return upstream.Session{}, false
	}
	// Last: only the session's own caller counts as a use of it, so nobody
	// else can keep it alive by presenting it.
	if !g.idle.Use(s.ID, now) {
		return upstream.Session{}, false
	}
	return s, true
}

// sealSession hands out a new session for the backend's session id, and
// counts its issue as its first use on this replica.
func (g *Gateway) sealSession(backend, subject, agent, upstreamID string, elicits bool) (string, error) {
	now := g.now()
	s, err := upstream.NewSession(backend, subject, agent, upstreamID, now)
	if err != nil {
		return "", err
	}
	s.Elicit = elicits
	sealed, err := g.opts.Sealer.Seal(s)
	if err != nil {
		return "", err
	}
	g.idle.Use(s.ID, now)
	return sealed, nil
}
