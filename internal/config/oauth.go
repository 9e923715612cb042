package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// OAuth turns the gateway into an OAuth 2.1 authorization server facade in
// front of the company's IdP (internal/oauthserver): MCP clients discover,
// register and log in with nothing but the gateway's URL, and receive
// gateway-signed tokens; the IdP's own tokens stay in the gateway.
type OAuth struct {
	Enabled bool `koanf:"enabled"`
	// Upstream is the IdP the people log in at. The gateway is one
	// confidential client there.
	Upstream OAuthUpstream `koanf:"upstream"`
	// SigningKeyFile holds the PEM private key (EC P-256 or RSA ≥ 2048)
	// the gateway signs its access tokens with; replicas must share it.
	// Empty: a key is generated at start (with a warning) and tokens do not
	// survive a restart or work on another replica.
	SigningKeyFile string `koanf:"signing_key_file"`
	// AccessTokenTTL, RefreshTokenTTL, ConsentTTL: 0 means the defaults
	// (1h, 720h, 24h).
	AccessTokenTTL  time.Duration `koanf:"access_token_ttl"`
	RefreshTokenTTL time.Duration `koanf:"refresh_token_ttl"`
	ConsentTTL      time.Duration `koanf:"consent_ttl"`
	// Scopes a client may be granted when its agent lists none; default
	// mcp:read and mcp:write.
	Scopes       []string          `koanf:"scopes"`
	Registration OAuthRegistration `koanf:"registration"`
	CIMD         OAuthCIMD         `koanf:"client_metadata_documents"`
	// CORSOrigins may call the discovery, registration, token and revocation
	// endpoints from a browser (the MCP Inspector, web clients): exact
	// origins, or "*".
	CORSOrigins []string `koanf:"cors_origins"`
}

// OAuthUpstream is the gateway's client at the IdP.
type OAuthUpstream struct {
	Issuer           string   `koanf:"issuer"`
	ClientID         string   `koanf:"client_id"`
	ClientSecret     string   `koanf:"client_secret"`
	ClientSecretFile string   `koanf:"client_secret_file"`
	PrivateKeyFile   string   `koanf:"private_key_file"`
	Scopes           []string `koanf:"scopes"`
	// GroupsClaim names the ID token claim carrying groups; default groups.
	GroupsClaim string `koanf:"groups_claim"`
}

// OAuthRegistration decides which pre-configured agent a newly registered
// client becomes: the first rule whose every given pattern matches wins.
type OAuthRegistration struct {
	Rules []OAuthRegistrationRule `koanf:"rules"`
	// DefaultAgent is the agent of a client no rule matches; empty refuses
	// such clients.
	DefaultAgent string `koanf:"default_agent"`
	// MaxClients bounds the registered clients (registration needs no
	// credentials, so the store must not grow without end); default 10000.
	MaxClients int `koanf:"max_clients"`
	// PerMinute bounds the registrations from one address per minute, so
	// one source cannot fill max_clients; default 20, counted like the
	// ratelimit section's budgets (in Redis when ratelimit.redis_url is set).
	PerMinute int `koanf:"per_minute"`
}

// OAuthRegistrationRule matches a registration by glob patterns ('*' and
// '?', as path.Match) on client_name and software_id.
type OAuthRegistrationRule struct {
	ClientName string `koanf:"client_name"`
	SoftwareID string `koanf:"software_id"`
	Agent      string `koanf:"agent"`
}

// OAuthCIMD governs Client ID Metadata Documents: an https client_id the
// gateway fetches to learn the client.
type OAuthCIMD struct {
	// Disabled refuses URL client_ids.
	Disabled bool `koanf:"disabled"`
	// AllowPrivateAddresses lets documents come from loopback and private
	// addresses: for tests only, since it lets anyone make the gateway
	// fetch from its own network.
	AllowPrivateAddresses bool `koanf:"allow_private_addresses"`
	// CacheTTL is how long a fetched document is trusted when it says
	// nothing (Cache-Control max-age is honoured between 1m and 24h);
	// default 1h.
	CacheTTL time.Duration `koanf:"cache_ttl"`
}

// Defaults of the oauth section.
const (
	DefaultOAuthAccessTokenTTL         = time.Hour
	DefaultOAuthRefreshTokenTTL        = 720 * time.Hour
	DefaultOAuthConsentTTL             = 24 * time.Hour
	DefaultOAuthMaxClients             = 10000
	DefaultOAuthRegistrationsPerMinute = 20
	DefaultOAuthCIMDCacheTTL           = time.Hour
)

// WithDefaults returns o with every zero value that has a default filled.
func (o OAuth) WithDefaults() OAuth {
	if o.AccessTokenTTL == 0 {
		o.AccessTokenTTL = DefaultOAuthAccessTokenTTL
	}
	if o.RefreshTokenTTL == 0 {
		o.RefreshTokenTTL = DefaultOAuthRefreshTokenTTL
	}
	if o.ConsentTTL == 0 {
		o.ConsentTTL = DefaultOAuthConsentTTL
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{"mcp:read", "mcp:write"}
	}
	if o.Registration.MaxClients == 0 {
		o.Registration.MaxClients = DefaultOAuthMaxClients
	}
	if o.Registration.PerMinute == 0 {
		o.Registration.PerMinute = DefaultOAuthRegistrationsPerMinute
	}
	if o.CIMD.CacheTTL == 0 {
		o.CIMD.CacheTTL = DefaultOAuthCIMDCacheTTL
	}
	if len(o.Upstream.Scopes) == 0 {
		o.Upstream.Scopes = []string{"openid", "profile", "email", "offline_access"}
	}
	if o.Upstream.GroupsClaim == "" {
		o.Upstream.GroupsClaim = "groups"
	}
	return o
}

func (c *Config) validateOAuth(v *validator) {
	o := c.OAuth
	if !o.Enabled {
		return
	}
	u := o.Upstream
	if pu, err := url.Parse(u.Issuer); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
		v.addf("oauth.upstream.issuer", "must be an absolute http(s) URL (the IdP's issuer)")
	}
	if u.ClientID == "" {
		v.addf("oauth.upstream.client_id", "required: the gateway's own client at the IdP")
	}
	secrets := 0
	for _, s := range []string{u.ClientSecret, u.ClientSecretFile, u.PrivateKeyFile} {
		if s != "" {
			secrets++
		}
	}
	if secrets != 1 {
		v.addf("oauth.upstream", "set exactly one of client_secret, client_secret_file, private_key_file")
	}
	if !slices.Contains(u.Scopes, "openid") && len(u.Scopes) > 0 {
		v.addf("oauth.upstream.scopes", "must include openid: the gateway learns who logged in from the ID token")
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"oauth.access_token_ttl", o.AccessTokenTTL},
		{"oauth.refresh_token_ttl", o.RefreshTokenTTL},
		{"oauth.consent_ttl", o.ConsentTTL},
		{"oauth.client_metadata_documents.cache_ttl", o.CIMD.CacheTTL},
	} {
		if d.val < 0 {
			v.addf(d.key, "must be > 0 (0 means the default)")
		}
	}
	if o.AccessTokenTTL > 24*time.Hour {
		v.addf("oauth.access_token_ttl", "must be at most 24h: access tokens are not checked against the IdP while they live")
	}
	if o.Registration.PerMinute < 0 {
		v.addf("oauth.registration.per_minute", "must be >= 0 (0 means %d)", DefaultOAuthRegistrationsPerMinute)
	}
	if o.Registration.MaxClients < 0 {
		v.addf("oauth.registration.max_clients", "must be >= 0 (0 means %d)", DefaultOAuthMaxClients)
	}
	for i, r := range o.Registration.Rules {
		p := fmt.Sprintf("oauth.registration.rules[%d]", i)
		if r.ClientName == "" && r.SoftwareID == "" {
			v.addf(p, "needs client_name or software_id")
		}
		for key, pat := range map[string]string{"client_name": r.ClientName, "software_id": r.SoftwareID} {
			if _, err := path.Match(pat, ""); err != nil {
				v.addf(p+"."+key, "bad pattern %q: %v", pat, err)
			}
		}
		if _, ok := c.Agents[r.Agent]; !ok {
			v.addf(p+".agent", "%q is not one of agents", r.Agent)
		}
	}
	if a := o.Registration.DefaultAgent; a != "" {
		if _, ok := c.Agents[a]; !ok {
			v.addf("oauth.registration.default_agent", "%q is not one of agents", a)
		}
	}
	for name, b := range c.Backends {
		for i, p := range b.Paths {
			// The same collision rule as every other pair of paths: at,
			// above or below (a backend at "/" would take /oauth2 too).
			if PathsCollide(p, "/oauth2") || PathsCollide(p, "/.well-known") {
				v.addf(fmt.Sprintf("backends.%s.paths[%d]", name, i), "%q belongs to the gateway's authorization server (oauth.enabled)", p)
			}
		}
	}
	for i, origin := range o.CORSOrigins {
		if origin != "*" && !isOrigin(origin) {
			v.addf(fmt.Sprintf("oauth.cors_origins[%d]", i), `must be "*" or an origin such as "http://localhost:6274"`)
		}
	}
	if pu, err := url.Parse(c.Server.PublicURL); err == nil && pu.Scheme == "http" && !IsLoopbackHost(pu.Hostname()) {
		v.addf("server.public_url", "must be https when oauth is enabled (tokens and login cookies would cross the network in clear); http is accepted only for loopback")
	}
}

// isOrigin reports whether s is an origin as configured: scheme://host[:port]
// and nothing else, one trailing "/" tolerated (people copy origins from
// an address bar). The one rule for server.allowed_origins and
// oauth.cors_origins; OriginMatches compares them with a browser's Origin.
func isOrigin(s string) bool {
	s = strings.TrimSuffix(s, "/")
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil && u.Opaque == ""
}

// OriginMatches reports whether a browser's Origin header is the configured
// origin (as isOrigin accepts it, or "*"): scheme and host compare without
// case, as a browser may spell them either way and means one origin.
func OriginMatches(configured, origin string) bool {
	return configured == "*" || strings.EqualFold(strings.TrimSuffix(configured, "/"), origin)
}

// IsLoopbackHost reports a host name or address that stays on this
// machine: localhost, 127.0.0.0/8, ::1. The one rule for DNS-rebinding
// checks, loopback redirect URIs (RFC 8252) and http public URLs.
func IsLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
