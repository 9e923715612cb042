package oauthserver

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/store"
)

// handleRevoke is RFC 7009: a refresh token or an access token of the
// gateway ends its whole grant. The answer is 200 whatever the token was,
// so the endpoint tells nobody which tokens exist.
func (s *Server) handleRevoke(c *fiber.Ctx) error {
	s.cors(c)
	ctx := c.UserContext()
	form, err := s.tokenForm(c)
	if err != nil {
		return s.refuseToken(c, err)
	}
	tok, clientID := form.Get("token"), form.Get("client_id")
	if tok == "" {
		return oauthError(c, fiber.StatusBadRequest, "invalid_request", "token is required")
	}
	var g store.OAuthGrant
	found := false
	if got, err := s.st.GrantByRefresh(ctx, hashOf("refresh", tok)); err == nil {
		g, found = got, true
	} else if !errors.Is(err, store.ErrNotFound) {
		return oauthError(c, fiber.StatusServiceUnavailable, "temporarily_unavailable", "the token could not be looked up")
	} else if at, err := s.parseAccessIgnoringExpiry(tok); err == nil {
		if got, err := s.st.GetOAuthGrant(ctx, at.grantID); err == nil {
			g, found = got, true
		}
	}
	// RFC 7009 §2.1: only the client the token was issued to may revoke it.
	if found && g.ClientID == clientID && g.RevokedAt.IsZero() {
		if err := s.revoke(ctx, g.ID, "revoked by the client"); err != nil {
			return oauthError(c, fiber.StatusServiceUnavailable, "temporarily_unavailable", "the token could not be revoked")
		}
		s.record(ctx, c, audit.Record{Action: "revoke", Subject: g.Subject, Issuer: g.Issuer, Agent: g.Agent, ObjectName: g.ClientID, Allow: true})
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.SendStatus(fiber.StatusOK)
}
