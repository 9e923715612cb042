package gateway

import (
	"time"

	"context"
	"github.com/mcpgw/mcpgw/internal/ratelimit"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/oauthserver"
)

// OAuthFacade is the gateway's own authorization server
// (internal/oauthserver), when oauth.enabled.
type OAuthFacade interface {
	Issuer() string
	Mount(r fiber.Router)
	HandleMetadata(c *fiber.Ctx) error
	LoginIDToken(ctx context.Context, p *identity.Principal) (string, error)
}

// MountOAuth serves the authorization server's endpoints. Called before
// MountMCP, whose catch-all would take their paths.
func (g *Gateway) MountOAuth(o OAuthFacade) {
	g.oauth = o
	o.Mount(g.app)
}

// oauthMetadata answers the metadata forms that sit below a backend's path
// (/<backend>/.well-known/openid-configuration): clients that take the MCP
// URL for the issuer probe there.
func (g *Gateway) oauthMetadata(c *fiber.Ctx) (bool, error) {
	if g.oauth == nil || (c.Method() != fiber.MethodGet && c.Method() != fiber.MethodOptions) || !oauthserver.IsMetadataPath(c.Path()) {
		return false, nil
	}
	return true, g.oauth.HandleMetadata(c)
}

// authorizationServers are what the protected resource metadata names:
// the gateway itself when it is the authorization server, else the IdPs.
func (g *Gateway) authorizationServers() []string {
	if g.oauth != nil {
		return []string{g.oauth.Issuer()}
	}
	issuers := make([]string, 0, len(g.opts.Config.Identity.Issuers))
	for _, is := range g.opts.Config.Identity.Issuers {
		issuers = append(issuers, is.Issuer)
	}
	return issuers
}

// gatewayTokenAudience checks that a token of the gateway's authorization
// server was issued for this backend (RFC 8707), or for the whole gateway:
// a token for one backend must not open another.
func (g *Gateway) gatewayTokenAudience(p *identity.Principal, r *route) bool {
	if p.Via == "" {
		return true
	}
	base := strings.TrimRight(g.server.PublicURL, "/")
	// A token for the federated endpoint is for every backend the caller
	// reaches through it, as a token for the whole gateway is.
	fed := g.server.FederatedPath != "" && slices.Contains(p.Audience, base+g.server.FederatedPath)
	return fed || slices.Contains(p.Audience, base) || slices.Contains(p.Audience, base+r.prefix)
}

// Resources are the resource identifiers the gateway serves: its public URL
// and each backend's path below it.
func (g *Gateway) Resources() []string {
	base := strings.TrimRight(g.server.PublicURL, "/")
	out := []string{base}
	if g.server.FederatedPath != "" {
		out = append(out, base+g.server.FederatedPath)
	}
	for _, p := range g.topo.Load().prefixes {
		out = append(out, base+p.path)
	}
	return out
}

// EnabledAgent is the agent of that name if it exists and is enabled.
func (g *Gateway) EnabledAgent(name string) (config.Agent, bool) {
	a, ok := g.topo.Load().agents[name]
	return a, ok && a.IsEnabled()
}

// countRegistration counts one OAuth client registration from source
// against perMinute, with the limiter the rate limits use (Redis when
// shared): registration needs no credential, so one address must not fill
// oauth.registration.max_clients.
func (g *Gateway) countRegistration(ctx context.Context, source string, perMinute int) (bool, time.Duration, error) {
	if perMinute <= 0 {
		return true, 0, nil
	}
	d, err := g.rate.sharedLimiter().Allow(ctx, "oauth-register:"+source, ratelimit.Limit{Name: "oauth_registrations", Max: perMinute, Window: time.Minute}, 1)
	if err != nil {
		return false, 0, err
	}
	return d.Allowed, d.RetryAfter, nil
}
