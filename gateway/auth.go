package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/telemetry"
)

// bearerToken extracts the token of an RFC 6750 Authorization header.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// resourcePath is the path of the resource a request addresses: the
// backend's canonical path when one matches, so that every path of a
// backend points at the same protected resource metadata.
func (g *Gateway) resourcePath(path string) string {
	if r, _ := g.topo.Load().match(path); r != nil {
		return r.prefix
	}
	return path
}

func (g *Gateway) resourceMetadataURL(path string) string {
	return strings.TrimRight(g.server.PublicURL, "/") + "/.well-known/oauth-protected-resource" + g.resourcePath(path)
}

// authenticate verifies an MCP request's bearer token with the gateway's
// verifier (the IdPs', and the gateway's own authorization server's when
// it is on); the challenge points at the path's resource metadata.
func (g *Gateway) authenticate(c *fiber.Ctx) (*identity.Principal, string, *rejection) {
	return g.bearer(c, g.opts.Verifier, g.resourceMetadataURL(c.Path()))
}

// bearer is the one authentication of every route that takes a bearer token
// (MCP and admin): it verifies the token with v, or refuses as RFC 6750 and
// RFC 9728 ask: 401 with no error code when no token was sent at all,
// invalid_token naming what is wrong otherwise, 503 when the issuer's keys
// are what is missing. meta is the resource metadata the challenge names.
func (g *Gateway) bearer(c *fiber.Ctx, v Authenticator, meta string) (*identity.Principal, string, *rejection) {
	header := c.Get(fiber.HeaderAuthorization)
	if header == "" {
		return nil, "", &rejection{form: formNoToken, status: fiber.StatusUnauthorized, code: "invalid_request",
			msg: "missing bearer token in Authorization header", meta: meta}
	}
	token, ok := bearerToken(header)
	// Copied: the token is kept in the call (credential exchange, relay)
	// past the handler, and Fiber's header string is reused.
	token = strings.Clone(token)
	if !ok {
		return nil, "", challengeRefusal(meta, "Authorization header must be \"Bearer <token>\"")
	}
	ctx, span := telemetry.StartSpan(c.UserContext(), g.opts.Tracer, telemetry.SpanIdentity)
	p, err := v.Verify(ctx, token)
	telemetry.EndSpan(span, err)
	if errors.Is(err, identity.ErrKeysUnavailable) {
		// The token may be fine; the issuer's keys are what is missing.
		g.log.Warn("token keys unavailable", "err", err)
		r := oauthRefusal(fiber.StatusServiceUnavailable, "temporarily_unavailable", "the token issuer's signing keys could not be loaded; try again shortly")
		r.headers = map[string]string{fiber.HeaderRetryAfter: "5"}
		return nil, "", r
	}
	if err != nil {
		desc := "token verification failed"
		var ie *identity.Error
		if errors.As(err, &ie) && ie.Description != "" {
			desc = ie.Description
		}
		return nil, "", challengeRefusal(meta, desc)
	}
	return p, token, nil
}

// corsMCP lets a browser client of an allowed origin (server.allowed_origins)
// read the MCP answers, the 401 challenge that starts its login included,
// and answers its preflights, which carry no token. Returns true when the
// request was a preflight, answered here.
func (g *Gateway) corsMCP(c *fiber.Ctx) bool {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" || !g.originAllowed(origin) {
		return false
	}
	c.Set(fiber.HeaderAccessControlAllowOrigin, strings.Clone(origin))
	c.Vary(fiber.HeaderOrigin)
	c.Set(fiber.HeaderAccessControlExposeHeaders, "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version")
	if c.Method() != fiber.MethodOptions || c.Get(fiber.HeaderAccessControlRequestMethod) == "" {
		return false
	}
	c.Set(fiber.HeaderAccessControlAllowMethods, "GET, POST, DELETE")
	c.Set(fiber.HeaderAccessControlAllowHeaders, "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, X-Agent-ID")
	c.Set(fiber.HeaderAccessControlMaxAge, "600")
	_ = c.SendStatus(fiber.StatusNoContent)
	return true
}

// sameSite refuses a request whose Host this gateway does not serve or
// whose Origin is not allowed (DNS rebinding, cross-site browsers): the
// first check of every route that acts for a caller.
func (g *Gateway) sameSite(c *fiber.Ctx) *rejection {
	if host := string(c.Request().Host()); !g.hostAllowed(host) {
		return oauthRefusal(fiber.StatusForbidden, "invalid_request", fmt.Sprintf("Host header %q is not one this gateway serves", host))
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !g.originAllowed(origin) {
		return oauthRefusal(fiber.StatusForbidden, "invalid_request", fmt.Sprintf("Origin %q is not allowed (server.allowed_origins)", origin))
	}
	return nil
}

// sanitizeQuoted keeps a header's quoted-string well formed whatever a
// reason says.
func sanitizeQuoted(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '\''
		}
		return r
	}, s)
}

func writeOAuthError(c *fiber.Ctx, status int, code, desc, decisionID string) error {
	body := fiber.Map{"error": code, "error_description": desc}
	if decisionID != "" {
		body["decision_id"] = decisionID
	}
	return c.Status(status).JSON(body)
}

// writeRPCError answers with one JSON-RPC error (id null when unknown).
func writeRPCError(c *fiber.Ctx, status int, id *mcpgo.RequestId, code int, msg string, data any) error {
	rid := mcpgo.NewRequestId(nil)
	if id != nil {
		rid = *id
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(status).Send(mcp.ErrorResponse(rid, code, msg, data))
}

// protectedResource serves RFC 9728 metadata for the gateway root and for
// each backend path: resource is exactly the URL a client connects to.
func (g *Gateway) protectedResource(c *fiber.Ctx) error {
	base := strings.TrimRight(g.server.PublicURL, "/")
	resource := base
	if rest := c.Params("*"); rest != "" && "/"+rest == g.server.FederatedPath {
		resource = base + g.server.FederatedPath
	} else if rest != "" {
		r, _ := g.topo.Load().match("/" + rest)
		if r == nil {
			return c.Status(fiber.StatusNotFound).JSON(fiber.Map{"error": "not_found", "error_description": "no backend serves /" + rest})
		}
		resource = base + r.prefix
	}
	meta := mcpserver.ProtectedResourceMetadataConfig{
		Resource:               resource,
		AuthorizationServers:   g.authorizationServers(),
		ScopesSupported:        g.scopesSupported(),
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "mcpgw",
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encode protected resource metadata: %w", err)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	return c.Send(b)
}

// scopesSupported is every scope some agent may use.
func (g *Gateway) scopesSupported() []string {
	set := map[string]bool{}
	for _, a := range g.topo.Load().agents {
		for _, s := range a.Scopes {
			set[s] = true
		}
	}
	if len(set) == 0 {
		return []string{"mcp:read", "mcp:write"}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
