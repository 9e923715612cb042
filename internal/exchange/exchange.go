// Package exchange obtains backend credentials by OAuth token exchange: the
// two-step Identity Assertion Authorization Grant (ID-JAG, as Okta Cross App
// Access implements it), plain RFC 8693 token exchange and the client
// credentials grant. Obtained tokens are cached per (subject, issuer, agent,
// backend, scopes); concurrent misses collapse into one exchange; failures
// are cached briefly. Tokens are never logged.
package exchange

import (
	"errors"
	"fmt"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// Auth methods served by this package (config.Backend.AuthMethod).
const (
	MethodOktaCrossApp      = "okta-cross-app"
	MethodTokenExchange     = "token-exchange"
	MethodClientCredentials = "client-credentials"
)

// Grant and token type identifiers (RFC 8693, RFC 7523,
// draft-ietf-oauth-identity-assertion-authz-grant).
const (
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantJWTBearer     = "urn:ietf:params:oauth:grant-type:jwt-bearer"

	tokenTypePrefix      = "urn:ietf:params:oauth:token-type:"
	TokenTypeAccessToken = tokenTypePrefix + "access_token"
	TokenTypeIDToken     = tokenTypePrefix + "id_token"
	TokenTypeJWT         = tokenTypePrefix + "jwt"
	TokenTypeIDJAG       = tokenTypePrefix + "id-jag"

	clientAssertionTypeJWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Defaults for zero Deps values.
const (
	DefaultCacheMaxCost    = 32 << 20 // bytes of cached tokens and keys
	DefaultCacheMaxTTL     = time.Hour
	DefaultFailureTTL      = 5 * time.Second
	DefaultSkew            = 30 * time.Second
	DefaultExchangeTimeout = 15 * time.Second
	// defaultUnknownTTL is how long a token whose response had no
	// expires_in is used (capped by MaxTTL): RFC 6749 leaves it to the
	// server, so stay conservative.
	defaultUnknownTTL = 5 * time.Minute
)

// CacheConfig bounds the token cache.
type CacheConfig struct {
	// MaxCost is the memory budget in bytes (approximately: key and token
	// lengths plus a fixed overhead per entry). Default DefaultCacheMaxCost.
	MaxCost int64
	// MaxTTL caps how long a token is reused, whatever its expires_in.
	MaxTTL time.Duration
	// FailureTTL is how long a failed exchange is remembered, so a broken
	// IdP is not hammered. Default 5 s.
	FailureTTL time.Duration
	// Skew is taken off expires_in, so a token is renewed before it expires
	// on its way to the backend. Default 30 s.
	Skew time.Duration
}

// Metrics receives cache and exchange outcomes, e.g. for Prometheus.
// Implementations must be safe for concurrent use and fast.
type Metrics interface {
	// CacheLookup is called once per Inject.
	CacheLookup(backend string, hit bool)
	// Exchanged is called after every exchange attempt (both steps of
	// okta-cross-app count as one). outcome is "ok", an OAuth error code
	// from a fixed set, "unreachable", "timeout" or "error".
	Exchanged(backend, method, outcome string, elapsed time.Duration)
}

// Deps are the exchanger's collaborators and limits. The zero value works.
type Deps struct {
	// HTTPClient talks to token and metadata endpoints. Default: 10 s
	// timeout, redirects not followed (a redirected POST would carry client
	// credentials somewhere unconfigured).
	HTTPClient *http.Client
	Logger     *slog.Logger
	Cache      CacheConfig
	// Clock replaces time.Now for cache expiry (tests). Client assertions
	// are always dated with the real time: a remote server checks them.
	Clock func() time.Time
	// Metrics may be nil.
	Metrics Metrics
	// ExchangeTimeout bounds one whole exchange (discovery and every step).
	ExchangeTimeout time.Duration
	// Issuers are the issuers the gateway trusts (identity.issuers). A
	// user's token is exchanged only at its own issuer: when exactly one is
	// trusted it is the issuer of every okta-cross-app exchange that names
	// none; with several, the agent or the backend must name it.
	Issuers []string
	// Facade is the gateway's own client at the IdP (oauth.upstream), when
	// the gateway is an authorization server: a person who logged in through
	// it holds the gateway's token, and the IdP's ID token of that login was
	// issued to this client, so this client is the requesting app of
	// Cross App Access for them.
	Facade *FacadeClient
}

// FacadeClient authenticates the gateway's own client at the IdP.
type FacadeClient struct {
	ClientID string
	// Key (private_key_jwt) or Secret (client_secret_basic).
	Key    jwk.Key
	Secret string
}

func (f *FacadeClient) auth() clientAuth {
	if f.Key != nil {
		return clientAuth{method: authPrivateKey, clientID: f.ClientID, key: f.Key}
	}
	return clientAuth{method: authSecretBasic, clientID: f.ClientID, secret: f.Secret}
}

// Exchanger builds injectors that share one token cache. It is safe for
// concurrent use.
type Exchanger struct {
	httpc   *http.Client
	log     *slog.Logger
	clock   func() time.Time
	metrics Metrics
	cfg     CacheConfig
	timeout time.Duration
	issuers []string
	facade  *FacadeClient
	cache   *tokenCache
	flights singleflight.Group
}

// New validates deps and builds an Exchanger. Close releases its cache.
func New(deps Deps) (*Exchanger, error) {
	cfg := deps.Cache
	switch {
	case cfg.MaxCost < 0:
		return nil, fmt.Errorf("exchange: cache max cost %d is negative", cfg.MaxCost)
	case cfg.MaxTTL < 0:
		return nil, fmt.Errorf("exchange: cache max TTL %s is negative", cfg.MaxTTL)
	case cfg.FailureTTL < 0:
		return nil, fmt.Errorf("exchange: cache failure TTL %s is negative", cfg.FailureTTL)
	case cfg.Skew < 0:
		return nil, fmt.Errorf("exchange: cache skew %s is negative", cfg.Skew)
	case deps.ExchangeTimeout < 0:
		return nil, fmt.Errorf("exchange: exchange timeout %s is negative", deps.ExchangeTimeout)
	}
	if cfg.MaxCost == 0 {
		cfg.MaxCost = DefaultCacheMaxCost
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultCacheMaxTTL
	}
	if cfg.FailureTTL == 0 {
		cfg.FailureTTL = DefaultFailureTTL
	}
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	x := &Exchanger{
		httpc:   deps.HTTPClient,
		log:     deps.Logger,
		clock:   deps.Clock,
		metrics: deps.Metrics,
		cfg:     cfg,
		timeout: deps.ExchangeTimeout,
		issuers: slices.Clone(deps.Issuers),
		facade:  deps.Facade,
	}
	if x.httpc == nil {
		x.httpc = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if x.log == nil {
		x.log = slog.New(slog.DiscardHandler)
	}
	x.log = x.log.With("component", "exchange")
	if x.clock == nil {
		x.clock = time.Now
	}
	if x.metrics == nil {
		x.metrics = noMetrics{}
	}
	if x.timeout == 0 {
		x.timeout = DefaultExchangeTimeout
	}
	cache, err := newTokenCache(cfg.MaxCost)
	if err != nil {
		return nil, fmt.Errorf("exchange: %w", err)
	}
	x.cache = cache
	return x, nil
}

// Close releases the cache. Injectors keep working afterwards, uncached.
func (x *Exchanger) Close() { x.cache.close() }

// Factories are the injector factories of this package's auth methods, to
// be merged with upstream.BasicFactories.
func (x *Exchanger) Factories() map[string]upstream.InjectorFactory {
	return map[string]upstream.InjectorFactory{
		MethodOktaCrossApp:      x.newCrossApp,
		MethodTokenExchange:     x.newTokenExchange,
		MethodClientCredentials: x.newClientCredentials,
	}
}

// Factories builds an Exchanger for the life of the process and returns its
// factories. Invalid deps make every factory fail with that error, so the
// mistake surfaces when the first backend is configured.
func Factories(deps Deps) map[string]upstream.InjectorFactory {
	x, err := New(deps)
	if err != nil {
		fail := func(b config.Backend) (upstream.Injector, error) {
			return nil, fmt.Errorf("backends.%s: %w", b.Name, err)
		}
		return map[string]upstream.InjectorFactory{
			MethodOktaCrossApp:      fail,
			MethodTokenExchange:     fail,
			MethodClientCredentials: fail,
		}
	}
	return x.Factories()
}

type noMetrics struct{}

func (noMetrics) CacheLookup(string, bool)                        {}
func (noMetrics) Exchanged(string, string, string, time.Duration) {}

var errNoPrincipal = errors.New("the caller has no verified principal")
