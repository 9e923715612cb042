// Package oauthserver is the gateway's OAuth 2.1 authorization server: a
// facade in front of the company's IdP, so that an MCP client given only a
// gateway URL can discover (RFC 9728, RFC 8414), register (RFC 7591, or
// present a Client ID Metadata Document), send its person through a consent
// page and the IdP's login, and receive gateway-signed access tokens and
// rotating refresh tokens. The IdP's own tokens never leave the gateway:
// they are kept, encrypted, in the store, and feed Cross App Access.
//
// One file per endpoint: metadata.go, register.go (with cimd.go),
// authorize.go (the consent page), callback.go, token.go, revoke.go,
// userinfo.go; tokens.go mints and verifies the gateway's tokens.
//
// Written here rather than taken from a library (fosite, ory/hydra): the
// facade's state (clients bound to agents, grants holding IdP tokens,
// consents) lives in the gateway's own store so replicas share it, and the
// flows are a small, fixed subset (authorization code + PKCE S256, refresh
// with rotation, revocation) whose every refusal must be audited in the
// gateway's trail.
package oauthserver

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/oauthmeta"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/store"
)

// Paths of the endpoints, below the issuer (server.public_url).
const (
	PathAuthorize     = "/oauth2/authorize"
	PathConsent       = "/oauth2/consent"
	PathCallback      = "/oauth2/callback"
	PathToken         = "/oauth2/token"
	PathRegister      = "/oauth2/register"
	PathRevoke        = "/oauth2/revoke"
	PathUserinfo      = "/oauth2/userinfo"
	PathJWKS          = "/oauth2/jwks"
	PathCompatToken   = "/oauth2/v1/token"                // the Okta MCP adapter's token proxy
	PathCompatRegistr = "/.well-known/oauth/registration" // the Okta MCP adapter's registration facade

	wellKnownAS   = "/.well-known/oauth-authorization-server"
	wellKnownOIDC = "/.well-known/openid-configuration"
)

// Lifetimes that are not configurable: short enough that a stolen value is
// worth little, long enough for a person at a login page.
const (
	codeTTL    = time.Minute
	pendingTTL = 10 * time.Minute
	formTTL    = 10 * time.Minute
	// grantCheckTTL is how long a replica trusts that a grant is not
	// revoked: revocation takes effect on every replica within it.
	grantCheckTTL = 5 * time.Second
)

// Store is the state the server keeps; store.Store is one.
type Store interface {
	store.OAuthStore
}

// Options are the server's parts. Config is the oauth section as loaded;
// New applies its defaults.
type Options struct {
	Config config.OAuth
	// Issuer is the gateway's public URL: the iss of its tokens and the
	// base of every endpoint.
	Issuer string
	// SecretKey (the session key, shared by replicas) derives the keys that
	// encrypt the IdP's tokens at rest and authenticate forms.
	SecretKey []byte
	Store     Store
	// Agent returns the enabled agent of that name, as the current topology
	// has it.
	Agent func(name string) (config.Agent, bool)
	// Resources are the resource identifiers the gateway serves (public URL
	// and each backend's URL), as the current topology has them.
	Resources func() []string
	Audit     func(context.Context, audit.Record)
	Logger    *slog.Logger
	// HTTPClient talks to the IdP; nil: a client with a 10 s timeout.
	HTTPClient *http.Client
	// CIMDTransport, when set, replaces the TLS settings (not the address
	// checks) of Client ID Metadata Document fetches: tests trust their
	// own certificate authority with it.
	CIMDTransport *http.Transport
	// Registrations counts registrations per source address (the gateway
	// passes its rate limiter); nil: not counted. It returns whether one
	// more is allowed and, if not, when to retry.
	Registrations func(ctx context.Context, source string, perMinute int) (bool, time.Duration, error)
	ClockSkew     time.Duration
	Now           func() time.Time
}

// Server is the authorization server. Safe for concurrent use.
type Server struct {
	cfg       config.OAuth
	issuer    string
	st        Store
	agent     func(string) (config.Agent, bool)
	resources func() []string
	regLimit  func(ctx context.Context, source string, perMinute int) (bool, time.Duration, error)
	audit     func(context.Context, audit.Record)
	log       *slog.Logger
	now       func() time.Time
	skew      time.Duration

	keys *signingKeys
	// box encrypts the IdP's tokens and the pending logins' secrets at
	// rest; the bind string of seal/open ties each to its row.
	box    *secrets.Box
	macKey []byte
	secure bool // https: __Host- cookies with Secure

	idp  *upstream
	cimd *cimdFetcher

	// grants caches "this grant is active" for grantCheckTTL.
	grants *ristretto.Cache[string, time.Time]
	// verified remembers verified access tokens until they expire.
	verified *ristretto.Cache[string, *accessToken]

	purgeStop chan struct{}
	purgeDone sync.WaitGroup
}

// New validates opts and builds the server. The IdP's metadata is
// discovered lazily, so an IdP that is down at start delays logins, not
// the gateway.
func New(ctx context.Context, opts Options) (*Server, error) {
	cfg := opts.Config.WithDefaults()
	if !cfg.Enabled {
		return nil, errors.New("oauth: not enabled")
	}
	if opts.Store == nil || opts.Agent == nil || opts.Resources == nil {
		return nil, errors.New("oauth: store, agent and resources are required")
	}
	iss, err := url.Parse(opts.Issuer)
	if err != nil || iss.Host == "" || (iss.Scheme != "https" && iss.Scheme != "http") {
		return nil, fmt.Errorf("oauth: issuer %q must be an absolute http(s) URL (server.public_url)", opts.Issuer)
	}
	if len(opts.SecretKey) < 32 {
		return nil, errors.New("oauth: secret key must be at least 32 bytes (server.session_key)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Audit == nil {
		opts.Audit = func(context.Context, audit.Record) {}
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	log := opts.Logger.With("component", "oauth")
	keys, err := loadSigningKeys(cfg.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("oauth.signing_key_file: %w", err)
	}
	if cfg.SigningKeyFile == "" {
		log.Warn("oauth.signing_key_file is empty: a signing key was generated; the gateway's tokens will not survive a restart nor work on another replica")
	}
	encKey, err := hkdf.Key(sha256.New, opts.SecretKey, nil, "mcpgw oauth upstream tokens v1", 32)
	if err != nil {
		return nil, fmt.Errorf("oauth: derive encryption key: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, opts.SecretKey, nil, "mcpgw oauth forms v1", 32)
	if err != nil {
		return nil, fmt.Errorf("oauth: derive form key: %w", err)
	}
	box, err := secrets.NewBox(encKey)
	if err != nil {
		return nil, fmt.Errorf("oauth: cipher: %w", err)
	}
	idp, err := newUpstream(ctx, cfg.Upstream, opts.Issuer, opts.HTTPClient, log)
	if err != nil {
		return nil, err
	}
	grants, err := ristretto.NewCache(&ristretto.Config[string, time.Time]{NumCounters: 100_000, MaxCost: 10_000, BufferItems: 64})
	if err != nil {
		return nil, fmt.Errorf("oauth: grant cache: %w", err)
	}
	verified, err := ristretto.NewCache(&ristretto.Config[string, *accessToken]{NumCounters: 100_000, MaxCost: 10_000, BufferItems: 64})
	if err != nil {
		return nil, fmt.Errorf("oauth: token cache: %w", err)
	}
	s := &Server{
		cfg: cfg, issuer: strings.TrimRight(opts.Issuer, "/"), st: opts.Store, agent: opts.Agent, resources: opts.Resources,
		audit: opts.Audit, log: log, now: opts.Now, skew: opts.ClockSkew,
		keys: keys, box: box, macKey: macKey, secure: iss.Scheme == "https",
		idp: idp, cimd: newCIMDFetcher(cfg.CIMD, opts.CIMDTransport), grants: grants, verified: verified, regLimit: opts.Registrations,
		purgeStop: make(chan struct{}),
	}
	s.purgeDone.Go(s.purgeLoop)
	return s, nil
}

// Close stops the purge loop and the IdP's key refresh.
func (s *Server) Close() {
	select {
	case <-s.purgeStop:
	default:
		close(s.purgeStop)
	}
	s.purgeDone.Wait()
	s.idp.close()
	s.grants.Close()
	s.verified.Close()
}

// Issuer is the iss of the gateway's tokens.
func (s *Server) Issuer() string { return s.issuer }

func (s *Server) purgeLoop() {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.purgeStop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			n, err := s.st.PurgeOAuth(ctx, s.now())
			cancel()
			if err != nil {
				s.log.Warn("purge expired oauth state", "err", err)
			} else if n > 0 {
				s.log.Debug("purged expired oauth state", "rows", n)
			}
		}
	}
}

// upstream is the IdP: its metadata (discovered once, then kept), and a
// verifier of the ID tokens it issues to the gateway.
type upstream struct {
	cfg    config.OAuthUpstream
	httpc  *http.Client
	log    *slog.Logger
	verify *identity.Verifier
	secret string
	key    any // private_key_jwt signer, when configured
	// redirect is the gateway's callback, registered at the IdP.
	redirect string

	mu sync.Mutex
	md *oauthmeta.Metadata
}
