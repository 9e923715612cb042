// Package config loads the gateway's single YAML file with koanf, applies
// MCPGW_* environment overrides (and the Okta MCP adapter's variables when
// mcpgw's own are absent), and validates it with field paths in every error.
//
// The backends and agents sections keep the Okta MCP adapter's shape so that
// a team's existing adapter config.yaml loads unchanged.
package config

import "time"

// Config is the whole gateway configuration.
type Config struct {
	Server    Server             `koanf:"server"`
	Identity  Identity           `koanf:"identity"`
	Backends  map[string]Backend `koanf:"backends"`
	Agents    map[string]Agent   `koanf:"agents"`
	Policy    Policy             `koanf:"policy"`
	Exchange  Exchange           `koanf:"exchange"`
	Store     Store              `koanf:"store"`
	Telemetry Telemetry          `koanf:"telemetry"`
	Log       Log                `koanf:"log"`
	RateLimit RateLimit          `koanf:"ratelimit"`
	Audit     Audit              `koanf:"audit"`
	OAuth     OAuth              `koanf:"oauth"`
}

// Server is the gateway's own listener and public identity.
type Server struct {
	Listen string `koanf:"listen"`
	// PublicURL is how clients reach the gateway; it is the base of every
	// RFC 9728 resource identifier the gateway advertises.
	PublicURL string `koanf:"public_url"`
	// SessionKeyFile holds the AEAD key that seals Mcp-Session-Id values
	// (32 raw bytes, or base64 / hex text of 32 bytes). SessionKey is the same
	// key given inline (MCPGW_SESSION_KEY). Neither set: a key is generated at
	// start and replicas will not share sessions.
	SessionKeyFile string `koanf:"session_key_file"`
	SessionKey     string `koanf:"session_key"`
	// SessionMaxAge bounds a gateway session's whole life, counted from when
	// the gateway sealed its Mcp-Session-Id (the sealed value carries the
	// time, so every replica enforces it). 0 means DefaultSessionMaxAge.
	SessionMaxAge time.Duration `koanf:"session_max_age"`
	// SessionIdleTimeout ends a session no request used for this long. The
	// sealed id is stateless, so the last use is kept in each replica's
	// memory: a replica that never served the session (or forgot it) counts
	// from its first request there. 0 means DefaultSessionIdleTimeout.
	SessionIdleTimeout time.Duration `koanf:"session_idle_timeout"`
	MaxBodyBytes       int64         `koanf:"max_body_bytes"`
	// MaxBatchMessages bounds the members of one JSON-RPC batch (each is
	// decided and audited). Default 100.
	MaxBatchMessages int `koanf:"max_batch_messages"`
	// MaxHeaderBytes bounds a request's header block (request line and every
	// header): the HTTP server's read buffer, and so also the longest bearer
	// token. 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes int      `koanf:"max_header_bytes"`
	AllowedOrigins []string `koanf:"allowed_origins"`
	// FederatedPath is the one MCP endpoint that aggregates every backend
	// the caller's agent may reach (federated.go); "" turns it off.
	FederatedPath string `koanf:"federated_path"`
	// AllowedHosts are Host header values accepted besides public_url's host
	// (and loopback names when listening on loopback): DNS rebinding protection.
	AllowedHosts    []string      `koanf:"allowed_hosts"`
	ReadTimeout     time.Duration `koanf:"read_timeout"`
	IdleTimeout     time.Duration `koanf:"idle_timeout"`
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	MetricsListen   string        `koanf:"metrics_listen"`
	// MetricsPprof serves Go's /debug/pprof/ on the metrics listener (never
	// on the main port): profiles show code paths and memory, for operators
	// only, and taking one costs CPU.
	MetricsPprof bool `koanf:"metrics_pprof"`
	// StreamWriteTimeout ends an SSE stream whose client has accepted no
	// bytes for this long (a client that stopped reading would otherwise
	// hold the stream, its backend request and its buffers forever). 0
	// means DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration `koanf:"stream_write_timeout"`
}

// DefaultMaxHeaderBytes is server.max_header_bytes when unset: room for an
// Okta or Azure AD token carrying a few hundred groups. fasthttp's own
// default (4 KiB) refuses a token with about a hundred.
const DefaultMaxHeaderBytes = 32 << 10

// Bounds of server.max_header_bytes: below 4 KiB ordinary requests fail;
// the buffer is allocated per connection, so megabytes would cost memory
// for every idle client.
const (
	minHeaderBytes = 4 << 10
	maxHeaderBytes = 1 << 20
)

// HeaderBytes is MaxHeaderBytes with the default applied.
func (s Server) HeaderBytes() int {
	if s.MaxHeaderBytes <= 0 {
		return DefaultMaxHeaderBytes
	}
	return s.MaxHeaderBytes
}

// Session lifetimes when server.session_max_age / session_idle_timeout are
// unset: a working day's session survives, an abandoned one does not.
const (
	DefaultSessionMaxAge      = 24 * time.Hour
	DefaultSessionIdleTimeout = time.Hour
)

// SessionLifetime is SessionMaxAge with the default applied.
func (s Server) SessionLifetime() time.Duration {
	if s.SessionMaxAge <= 0 {
		return DefaultSessionMaxAge
	}
	return s.SessionMaxAge
}

// SessionIdleLimit is SessionIdleTimeout with the default applied.
func (s Server) SessionIdleLimit() time.Duration {
	if s.SessionIdleTimeout <= 0 {
		return DefaultSessionIdleTimeout
	}
	return s.SessionIdleTimeout
}

// Identity says which token issuers the gateway trusts.
type Identity struct {
	Issuers   []Issuer      `koanf:"issuers"`
	ClockSkew time.Duration `koanf:"clock_skew"`
	// JWKSRefreshInterval is the background refresh period of every JWKS.
	JWKSRefreshInterval time.Duration `koanf:"jwks_refresh_interval"`
	// ClaimsCacheMaxCost bounds the verified-claims cache (ristretto cost units ≈ entries).
	ClaimsCacheMaxCost int64 `koanf:"claims_cache_max_cost"`
}

// Issuer is one trusted OIDC/OAuth issuer.
type Issuer struct {
	Issuer string `koanf:"issuer"`
	// Audiences are the aud values accepted on this issuer's tokens.
	Audiences []string `koanf:"audiences"`
	// AgentAudiences also accepts a token whose aud, or whose client (cid,
	// azp, client_id, appid), is the client_id of an agent bound to this
	// issuer: the Okta MCP adapter's rule for the Okta org authorization
	// server, whose tokens carry no API audience (an ID token's aud is the
	// client). With it, audiences may be empty.
	AgentAudiences bool `koanf:"agent_audiences"`
	// JWKSURL empty: discovered from the issuer's metadata.
	JWKSURL string `koanf:"jwks_url"`
	// GroupsClaim names the claim holding group names (default "groups").
	GroupsClaim string `koanf:"groups_claim"`
	// TokenTypes are the JOSE typ values accepted on this issuer's tokens,
	// compared case-insensitively with "application/" optional (RFC 7515
	// §4.1.9); "" accepts a token without typ. Empty: at+jwt, JWT or none,
	// so ID-JAGs, logout tokens and other typed JWTs of the same IdP are
	// refused as access tokens.
	TokenTypes []string `koanf:"token_types"`
}

// Backend is one MCP server behind the gateway, in the Okta adapter's shape.
type Backend struct {
	// Name is the key of the backends map; it is not read from YAML.
	Name string `koanf:"-"`
	URL  string `koanf:"url"`
	// Paths are the gateway path prefixes routed to this backend (longest
	// prefix wins). A backend with no paths gets "/<name>"; Validate fills
	// it in and drops trailing slashes.
	Paths []string `koanf:"paths"`
	// AuthMethod is one of the Auth* constants; Validate rewrites the
	// adapter's "static-key" to "pre-shared-key".
	AuthMethod     string            `koanf:"auth_method"`
	AuthConfig     map[string]any    `koanf:"auth_config"`
	Description    string            `koanf:"description"`
	TimeoutSeconds int               `koanf:"timeout_seconds"`
	Enabled        *bool             `koanf:"enabled"`
	Labels         map[string]string `koanf:"labels"`
	// ForwardSubpaths lets requests below the backend's path
	// (/hr/extra) reach the same sub-path below its URL. Off, only the
	// path itself is served, so no path the gateway did not decide on can
	// be normalized by the backend into another endpoint.
	ForwardSubpaths bool `koanf:"forward_subpaths"`
	// ToolIntegrity is off, observe, enforce or trust_on_first_use: whether
	// the definitions this backend lists are pinned, and whether the
	// shipped policy holds back what is not approved (integrity.go).
	ToolIntegrity string `koanf:"tool_integrity"`
	// FederatedPrefix begins the names of this backend's tools and prompts
	// on the federated endpoint (server.federated_path); unset, it is
	// "<name>__". "" shows them unprefixed (one backend at most): a client
	// or test suite that calls fixed names can then reach that backend.
	FederatedPrefix *string `koanf:"federated_prefix"`
}

// FederatedNamePrefix is what begins this backend's names on the
// federated endpoint: federated_prefix, or "<name>__" when unset.
func (b Backend) FederatedNamePrefix() string {
	if b.FederatedPrefix != nil {
		return *b.FederatedPrefix
	}
	return b.Name + "__"
}

// IsEnabled treats an absent enabled flag as true, as the adapter does.
func (b Backend) IsEnabled() bool { return b.Enabled == nil || *b.Enabled }

// Timeout is the per-request upstream timeout (default 30 s).
func (b Backend) Timeout() time.Duration {
	if b.TimeoutSeconds <= 0 {
		return 30 * time.Second
	}
	return time.Duration(b.TimeoutSeconds) * time.Second
}

// Agent is one AI agent (MCP client application) allowed through the gateway.
type Agent struct {
	// Name is the key of the agents map; it is not read from YAML.
	Name    string `koanf:"-"`
	AgentID string `koanf:"agent_id"`
	// ClientID is the OAuth client the agent's tokens are issued to. Set,
	// only tokens that prove this client (cid, azp, client_id or appid) may
	// use the agent.
	ClientID string `koanf:"client_id"`
	// Issuer is the identity.issuers entry whose client ClientID is, and the
	// only issuer whose tokens may use the agent. Required with a ClientID
	// when several issuers are configured: a client id means nothing
	// without the issuer that registered it.
	Issuer string `koanf:"issuer"`
	// AllowClientlessTokens lets tokens that prove no OAuth client use this
	// agent (only an agent without ClientID). Off, such tokens may use no
	// agent at all: an X-Agent-ID header is not a credential.
	AllowClientlessTokens bool   `koanf:"allow_clientless_tokens"`
	ClientSecret          string `koanf:"client_secret"`
	// ClientSecretFile is a path to the client secret; Load reads it into
	// ClientSecret and empties this field.
	ClientSecretFile string `koanf:"client_secret_file"`
	// PrivateKey is a JWK (as the adapter has it) or PEM; PrivateKeyFile a path to either.
	PrivateKey     string `koanf:"private_key"`
	PrivateKeyFile string `koanf:"private_key_file"`
	// Scopes bound what the agent may do with a token's scopes. Absent
	// (nil), the token's scopes decide, as in the Okta MCP adapter, whose
	// examples never set them; an empty list ("scopes: []") allows none.
	// The two must stay distinct everywhere an agent is stored or decided.
	Scopes        []string `koanf:"scopes"`
	BackendAccess []string `koanf:"backend_access"`
	Enabled       *bool    `koanf:"enabled"`
	Description   string   `koanf:"description"`
}

// IsEnabled treats an absent enabled flag as true, as the adapter does.
func (a Agent) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// ID is the value clients send in X-Agent-ID: agent_id, else the map key.
func (a Agent) ID() string {
	if a.AgentID != "" {
		return a.AgentID
	}
	return a.Name
}

// Policy configures the embedded OPA engine.
type Policy struct {
	// Bundle is a directory of Rego and data, a bundle file, or (signed
	// bundles) an http(s) URL. Default "policies".
	Bundle          string        `koanf:"bundle"`
	AllowUnsigned   bool          `koanf:"allow_unsigned"`
	VerificationKey string        `koanf:"verification_key"`
	KeyID           string        `koanf:"key_id"`
	Timeout         time.Duration `koanf:"timeout"`
	// Shadow is a second bundle source (path or URL) evaluated beside the
	// active one and never enforced.
	Shadow string `koanf:"shadow"`
	// PollInterval is how often a bundle file or directory is checked for
	// changes and, for a bundle URL, the shortest delay between downloads.
	PollInterval time.Duration `koanf:"poll_interval"`
	// PersistDir keeps the last good downloaded bundle for a start while the
	// bundle server is down.
	PersistDir string `koanf:"persist_dir"`
	// DecisionCacheSize bounds the per-activation decision cache (entries;
	// 0: the default, 16384; -1: off). It is used only when the policy calls
	// no time, network or random builtin.
	DecisionCacheSize int `koanf:"decision_cache_size"`
	// Bundle limits: a policy bundle (file, directory or download) over any
	// of them is refused before it is expanded, and the active one keeps
	// serving. MaxBundleBytes bounds it compressed (default 64 MiB),
	// MaxBundleUncompressedBytes its files together (256 MiB),
	// MaxBundleFiles their number (10000), MaxBundleFileBytes each (64 MiB).
	// 0 takes the default; there is no "unlimited".
	MaxBundleBytes             int64 `koanf:"max_bundle_bytes"`
	MaxBundleUncompressedBytes int64 `koanf:"max_bundle_uncompressed_bytes"`
	MaxBundleFiles             int   `koanf:"max_bundle_files"`
	MaxBundleFileBytes         int64 `koanf:"max_bundle_file_bytes"`
	// OPA holds OPA's own configuration (services, bundles, keys,
	// decision_logs, status) unchanged.
	OPA map[string]any `koanf:"opa"`
}

// Exchange tunes the backend-credential token cache shared by every
// token-exchange backend. Zero values take the defaults.
type Exchange struct {
	// CacheMaxBytes bounds the memory of cached backend tokens (default 32 MiB).
	CacheMaxBytes int64 `koanf:"cache_max_bytes"`
	// CacheMaxTTL caps how long a token is reused (default 1h; never past
	// the token's expires_in minus 30 s, nor the user's own token).
	CacheMaxTTL time.Duration `koanf:"cache_max_ttl"`
	// FailureTTL is how long a failed exchange is remembered (default 5s).
	FailureTTL time.Duration `koanf:"failure_ttl"`
	// Timeout bounds one whole exchange, every step included (default 15s).
	Timeout time.Duration `koanf:"timeout"`
}

// Store configures persistence.
type Store struct {
	// DSN: "file:mcpgw.db", ":memory:" or "postgres://...".
	DSN string `koanf:"dsn"`
	// PollInterval is how often a replica re-reads agents and backends
	// changed by another replica.
	PollInterval time.Duration `koanf:"poll_interval"`
}

// Telemetry configures traces.
type Telemetry struct {
	OTLPEndpoint string  `koanf:"otlp_endpoint"`
	SampleRatio  float64 `koanf:"sample_ratio"`
}

// Log configures slog.
type Log struct {
	Level  string `koanf:"level"`
	Format string `koanf:"format"` // json (default) or text
}
