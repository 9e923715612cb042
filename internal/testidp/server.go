// Package testidp is a small but honest OAuth 2.0 / OpenID Connect
// authorization server for the demo and for tests: real HTTP on loopback,
// real RSA keys, discovery documents, a JWKS with rotation, and a token
// endpoint with real client authentication. Users (Options.Users) sign in
// through a small HTML login form at the authorization endpoint: the
// authorization code flow with PKCE S256, ID tokens, rotating refresh tokens
// and userinfo, so a gateway's OAuth client can be tested end to end in a
// real browser (test/interop/oauth) or headless (Options.AutoLogin).
//
// It is deliberately built on net/http rather than Fiber: it is a test
// fixture, and the standard library keeps it independent of the gateway it
// tests.
package testidp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint paths, relative to the issuer.
const (
	PathOIDCDiscovery  = "/.well-known/openid-configuration"
	PathOAuthDiscovery = "/.well-known/oauth-authorization-server"
	PathJWKS           = "/.well-known/jwks.json"
	PathToken          = "/token"
	// PathOktaOrgToken is where an Okta org authorization server takes
	// token requests. A Server answers there too, so that it can play an
	// Okta org whose token endpoint a client derives from the issuer
	// (as mcpgw does for okta-cross-app without idp_token_endpoint).
	PathOktaOrgToken = "/oauth2/v1/token"
)

// DefaultAudience is the audience of minted tokens when Options.Audience is empty.
const DefaultAudience = "api://mcpgw"

// Options configures a Server. The zero value is usable.
type Options struct {
	// Addr is the listen address (default "127.0.0.1:0", a free loopback port).
	Addr string
	// Audience is the default "aud" of minted and issued tokens (default DefaultAudience).
	Audience string
	// TokenTTL is the lifetime of minted and issued tokens (default 1h).
	TokenTTL time.Duration
	// Logger receives request outcomes; secrets and tokens are never logged.
	Logger *slog.Logger
	// JWKSOmitAlg publishes keys without "alg", as some IdPs (Azure AD) do,
	// so verifiers can be tested against such a JWKS.
	JWKSOmitAlg bool
	// ResourceAS, when set, makes this server also a resource authorization
	// server that accepts ID-JAGs from a trusted IdP (jwt-bearer grant).
	ResourceAS *ResourceASOptions
	// Users can sign in at the authorization endpoint (see AddUser).
	Users []User
	// AutoLogin, a username of Users, skips the login form: a valid
	// authorization request is answered at once with a code for that user,
	// for headless tests.
	AutoLogin string
}

// Server is a running authorization server. All methods are safe for
// concurrent use.
type Server struct {
	opts   Options
	issuer string
	log    *slog.Logger
	http   *http.Server
	done   chan struct{} // closed when Serve returns

	keys    *keyRing
	clients *clientRegistry
	users   *userRegistry
	// authz holds pending logins, authorization codes and refresh tokens.
	authz *authzStore
	// grants maps a grant_type to its handler; see registerGrants.
	grants map[string]grantHandler
	// assertionJTIs remembers client-assertion jti values until they expire
	// (RFC 7523 §3 lets the server reject a replayed assertion).
	assertionJTIs *jtiCache
	// resourceAS is the resource authorization server role (nil: not enabled).
	resourceAS *resourceAS
	// grantRequests counts token requests per registered grant_type.
	grantRequests map[string]*atomic.Int64

	jwksFetches atomic.Int64
	closeOnce   sync.Once
	closeErr    error
	// stopOnCtx releases the ctx watcher registered by Start; atomic because
	// the watcher itself may run Close before Start has stored it.
	stopOnCtx atomic.Pointer[func() bool]
}

// Start generates a signing key, listens and serves until Close is called
// or ctx is cancelled.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Audience == "" {
		opts.Audience = DefaultAudience
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}

	users := newUserRegistry()
	for _, u := range opts.Users {
		if err := users.put(u); err != nil {
			return nil, fmt.Errorf("testidp: %w", err)
		}
	}
	if opts.AutoLogin != "" {
		if _, ok := users.get(opts.AutoLogin); !ok {
			return nil, fmt.Errorf("testidp: AutoLogin %q is not one of Users", opts.AutoLogin)
		}
	}
	opts.Users = nil // the registry is the one copy

	keys, err := newKeyRing()
	if err != nil {
		return nil, fmt.Errorf("testidp: %w", err)
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("testidp: listen on %s: %w", opts.Addr, err)
	}

	s := &Server{
		opts:          opts,
		issuer:        "http://" + ln.Addr().String(),
		log:           opts.Logger.With("component", "testidp"),
		done:          make(chan struct{}),
		keys:          keys,
		clients:       newClientRegistry(),
		users:         users,
		authz:         newAuthzStore(),
		assertionJTIs: newJTICache(),
	}
	if opts.ResourceAS != nil {
		if s.resourceAS, err = newResourceAS(s, *opts.ResourceAS); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("testidp: %w", err)
		}
	}
	s.grants = s.registerGrants()
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}

	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "err", err)
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	s.stopOnCtx.Store(&stop)

	s.log.Info("started", "issuer", s.issuer)
	return s, nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathOIDCDiscovery, s.handleMetadata)
	mux.HandleFunc("GET "+PathOAuthDiscovery, s.handleMetadata)
	mux.HandleFunc("GET "+PathJWKS, s.handleJWKS)
	mux.HandleFunc("POST "+PathToken, s.handleToken)
	mux.HandleFunc("POST "+PathOktaOrgToken, s.handleToken)
	mux.HandleFunc("GET "+PathAuthorize, s.handleAuthorize)
	mux.HandleFunc("POST "+PathLogin, s.handleLogin)
	mux.HandleFunc("GET "+PathUserinfo, s.handleUserinfo)
	mux.HandleFunc("POST "+PathUserinfo, s.handleUserinfo)
	return mux
}

// Issuer is the issuer identifier, "http://127.0.0.1:PORT" without a trailing slash.
func (s *Server) Issuer() string { return s.issuer }

// JWKSURL is where the public keys are published.
func (s *Server) JWKSURL() string { return s.issuer + PathJWKS }

// TokenEndpoint is the OAuth token endpoint.
func (s *Server) TokenEndpoint() string { return s.issuer + PathToken }

// AuthorizationEndpoint is where the authorization code flow starts.
func (s *Server) AuthorizationEndpoint() string { return s.issuer + PathAuthorize }

// UserinfoEndpoint answers a user's access token with the user's claims.
func (s *Server) UserinfoEndpoint() string { return s.issuer + PathUserinfo }

// Audience is the default audience of minted tokens.
func (s *Server) Audience() string { return s.opts.Audience }

// JWKSFetches counts GET requests served on the JWKS endpoint, so verifier
// tests can assert how often keys were refreshed.
func (s *Server) JWKSFetches() int64 { return s.jwksFetches.Load() }

// Close stops the server and waits for in-flight requests (at most 5 s).
// It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if stop := s.stopOnCtx.Load(); stop != nil {
			(*stop)()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.http.Shutdown(ctx); err != nil {
			s.closeErr = fmt.Errorf("testidp: shutdown: %w", err)
			_ = s.http.Close()
		}
		<-s.done
	})
	return s.closeErr
}
