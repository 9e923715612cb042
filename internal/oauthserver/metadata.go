package oauthserver

import (
	"encoding/json"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/config"
)

// asMetadata is the RFC 8414 / OpenID Connect discovery document. Its own
// type: mcp-go's AuthServerMetadata lacks the userinfo endpoint and
// client_id_metadata_document_supported.
type asMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported"`
	AuthorizationResponseIssParameter bool     `json:"authorization_response_iss_parameter_supported"`
}

func (s *Server) metadata() asMetadata {
	return asMetadata{
		Issuer:                            s.issuer,
		AuthorizationEndpoint:             s.issuer + PathAuthorize,
		TokenEndpoint:                     s.issuer + PathToken,
		RegistrationEndpoint:              s.issuer + PathRegister,
		RevocationEndpoint:                s.issuer + PathRevoke,
		UserinfoEndpoint:                  s.issuer + PathUserinfo,
		JWKSURI:                           s.issuer + PathJWKS,
		ScopesSupported:                   s.cfg.Scopes,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported: []string{"none"},
		RevocationEndpointAuthMethods:     []string{"none"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		// OIDC discovery requires these two; the gateway issues no ID
		// tokens, but clients that probe openid-configuration read them.
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{s.keys.alg.String()},
		ClientIDMetadataDocumentSupported: !s.cfg.CIMD.Disabled,
		AuthorizationResponseIssParameter: true,
	}
}

// IsMetadataPath reports whether a GET of path asks for the authorization
// server's metadata, in any of the forms clients probe: the well-known
// name alone, with a path inserted after it (RFC 8414 §3.1), or appended to
// a path (OIDC Discovery §4, and clients that take the MCP URL for the
// issuer).
func IsMetadataPath(path string) bool {
	for _, wk := range []string{wellKnownAS, wellKnownOIDC} {
		if path == wk || strings.HasPrefix(path, wk+"/") || strings.HasSuffix(path, wk) {
			return true
		}
	}
	return false
}

func (s *Server) handleMetadata(c *fiber.Ctx) error {
	b, err := json.Marshal(s.metadata())
	if err != nil {
		return err
	}
	s.cors(c)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(b)
}

func (s *Server) handleJWKS(c *fiber.Ctx) error {
	b, err := json.Marshal(s.keys.public)
	if err != nil {
		return err
	}
	s.cors(c)
	c.Set(fiber.HeaderContentType, "application/jwk-set+json")
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(b)
}

// cors allows the configured browser origins on the endpoints a browser
// client calls directly.
func (s *Server) cors(c *fiber.Ctx) bool {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return false
	}
	for _, o := range s.cfg.CORSOrigins {
		if config.OriginMatches(o, origin) {
			c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
			c.Vary(fiber.HeaderOrigin)
			return true
		}
	}
	return false
}

// handlePreflight answers CORS preflights for configured origins; others
// get no CORS headers, so the browser refuses.
func (s *Server) handlePreflight(c *fiber.Ctx) error {
	if s.cors(c) {
		c.Set(fiber.HeaderAccessControlAllowMethods, "GET, POST, OPTIONS")
		c.Set(fiber.HeaderAccessControlAllowHeaders, "Authorization, Content-Type, MCP-Protocol-Version")
		c.Set(fiber.HeaderAccessControlMaxAge, "600")
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// Mount registers the endpoints on app. Path-appended metadata forms are
// answered by the caller (IsMetadataPath), since they sit below backends'
// paths.
func (s *Server) Mount(app fiber.Router) {
	for _, p := range []string{wellKnownAS, wellKnownAS + "/*", wellKnownOIDC, wellKnownOIDC + "/*"} {
		app.Get(p, s.handleMetadata)
		app.Options(p, s.handlePreflight)
	}
	app.Get(PathJWKS, s.handleJWKS)
	app.Get(PathAuthorize, s.handleAuthorize)
	app.Post(PathConsent, s.handleConsent)
	app.Get(PathCallback, s.handleCallback)
	for _, p := range []string{PathToken, PathCompatToken} {
		app.Post(p, s.handleToken)
		app.Options(p, s.handlePreflight)
	}
	app.Post(PathRegister, s.handleRegister)
	app.Options(PathRegister, s.handlePreflight)
	app.Post(PathCompatRegistr, s.handleRegister)
	app.Post(PathRevoke, s.handleRevoke)
	app.Options(PathRevoke, s.handlePreflight)
	app.Get(PathUserinfo, s.handleUserinfo)
	app.Post(PathUserinfo, s.handleUserinfo)
	app.Options(PathUserinfo, s.handlePreflight)
	app.Options(PathJWKS, s.handlePreflight)
}

// HandleMetadata serves the metadata for a path IsMetadataPath accepted.
func (s *Server) HandleMetadata(c *fiber.Ctx) error {
	if c.Method() == fiber.MethodOptions {
		return s.handlePreflight(c)
	}
	return s.handleMetadata(c)
}

// oauthError writes an RFC 6749 §5.2 error.
func oauthError(c *fiber.Ctx, status int, code, desc string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	return c.Status(status).JSON(fiber.Map{"error": code, "error_description": desc})
}
