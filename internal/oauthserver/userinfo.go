package oauthserver

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/identity"
)

// handleUserinfo answers who a gateway access token speaks for (OIDC Core
// §5.3): the subject, the groups and the profile claims of the login.
func (s *Server) handleUserinfo(c *fiber.Ctx) error {
	s.cors(c)
	ctx := c.UserContext()
	challenge := func(desc string) error {
		c.Set(fiber.HeaderWWWAuthenticate, fmt.Sprintf(`Bearer error="invalid_token", error_description=%q`, desc))
		return oauthError(c, fiber.StatusUnauthorized, "invalid_token", desc)
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(c.Get(fiber.HeaderAuthorization)), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer`)
		return oauthError(c, fiber.StatusUnauthorized, "invalid_request", "a Bearer access token of this gateway is required")
	}
	at, err := s.parseAccess(tok)
	if err != nil {
		return challenge(describe(err))
	}
	if err := s.checkGrant(ctx, at.grantID); err != nil {
		return challenge(describe(err))
	}
	g, err := s.st.GetOAuthGrant(ctx, at.grantID)
	if err != nil {
		return challenge("the token's grant no longer exists")
	}
	out := map[string]any{}
	if len(g.Claims) > 0 {
		_ = json.Unmarshal(g.Claims, &out)
	}
	out["sub"] = g.Subject
	out["groups"] = g.Groups
	out["idp_iss"] = g.Issuer
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

func describe(err error) string {
	if ie, ok := err.(*identity.Error); ok && ie.Description != "" {
		return ie.Description
	}
	return "token verification failed"
}
