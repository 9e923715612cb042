package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/mcpgw/mcpgw/internal/config"
)

// Defaults for zero config values.
const (
	DefaultClaimsCacheMaxCost = 10000
	DefaultGroupsClaim        = "groups"
	DefaultFetchTimeout       = 10 * time.Second
	// DefaultMaxTokenBytes is the longest token accepted unless
	// WithMaxTokenBytes says otherwise. It equals the gateway's default
	// server.max_header_bytes: a token the HTTP server would not read whole
	// cannot be verified anyway, and one it reads must not be refused here
	// for a smaller limit of the verifier's own.
	DefaultMaxTokenBytes = config.DefaultMaxHeaderBytes
)

// DefaultTokenTypes are the JOSE typ values accepted on an issuer's tokens
// when its token_types is empty: RFC 9068 access tokens (at+jwt), the
// generic JWT that Okta, Azure AD and most IdPs put on access tokens, and no
// typ at all. "" stands for an absent typ.
var DefaultTokenTypes = []string{"at+jwt", "JWT", ""}

// allowedAlgs is the signature algorithm allow-list. Never none, never HMAC:
// a JWKS is public, so an HMAC "key" derived from it proves nothing.
var allowedAlgs = map[string]jwa.SignatureAlgorithm{
	jwa.RS256().String(): jwa.RS256(),
	jwa.PS256().String(): jwa.PS256(),
	jwa.ES256().String(): jwa.ES256(),
	jwa.EdDSA().String(): jwa.EdDSA(),
}

// Hooks receive verification outcomes, e.g. for Prometheus. Nil fields are skipped.
type Hooks struct {
	// Verified is called once per Verify: reason is "ok" or an Error's
	// Reason; cached tells whether the principal came from the cache.
	Verified func(reason string, cached bool, elapsed time.Duration)
	// JWKSFetched is called after every JWKS fetch attempt (discovery included).
	JWKSFetched func(issuer string, err error)
}

// Option customises a Verifier.
type Option func(*options)

type options struct {
	httpc         *http.Client
	log           *slog.Logger
	clock         func() time.Time
	hooks         Hooks
	fetchTimeout  time.Duration
	maxTokenBytes int
}

// WithHTTPClient sets the client for discovery and JWKS fetches. jwx's
// redirect hardening is applied on top; a client without Timeout gets one.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpc = c } }

// WithLogger sets the logger (default: discard). Tokens are never logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock replaces time.Now for token time checks, cache expiry and the
// unknown-kid refresh limit (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithMetrics installs outcome hooks.
func WithMetrics(h Hooks) Option { return func(o *options) { o.hooks = h } }

// WithFetchTimeout bounds each discovery + JWKS fetch (default 10 s).
func WithFetchTimeout(d time.Duration) Option { return func(o *options) { o.fetchTimeout = d } }

// WithMaxTokenBytes sets the longest token accepted (default
// DefaultMaxTokenBytes). The gateway passes server.max_header_bytes, so the
// HTTP server and the verifier agree on what fits.
func WithMaxTokenBytes(n int) Option { return func(o *options) { o.maxTokenBytes = n } }

// Verifier verifies bearer JWTs from the configured issuers. It is safe for
// concurrent use.
type Verifier struct {
	issuers map[string]*trustedIssuer // by exact iss
	order   []string                  // config order, for Ready
	cache   *principalCache
	skew    time.Duration
	clock   func() time.Time
	log     *slog.Logger
	hooks   Hooks
	// maxTokenBytes bounds a token before any parsing.
	maxTokenBytes int

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	// signatureChecks counts signature verifications (tests use it to prove
	// cache hits skip them).
	signatureChecks atomic.Int64

	// agentClients are, per issuer, the client_ids of the agents bound to
	// it: the audiences an agent_audiences issuer's tokens may name. They
	// change with the agents (admin API), so they are checked on every
	// Verify, cached principals included.
	agentClients atomic.Pointer[map[string]map[string]bool]
}

type trustedIssuer struct {
	cfg  config.Issuer
	keys *keySource
	// tokenTypes are the accepted typ values, normalised (normalizeTyp).
	tokenTypes map[string]bool
}

// NewVerifier validates cfg, loads every issuer's JWKS (discovering jwks_uri
// when empty) and starts background refresh. ctx bounds only this first
// load: an unreachable IdP does not fail construction; Ready reports it and
// Verify fails closed for that issuer until its keys load.
func NewVerifier(ctx context.Context, cfg config.Identity, opts ...Option) (*Verifier, error) {
	o := options{clock: time.Now, fetchTimeout: DefaultFetchTimeout, maxTokenBytes: DefaultMaxTokenBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxTokenBytes <= 0 {
		return nil, fmt.Errorf("identity: maximum token length %d must be positive", o.maxTokenBytes)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.httpc == nil {
		o.httpc = &http.Client{Timeout: o.fetchTimeout}
	}
	// Redirect hardening (no https->http downgrade, at most 5 hops) and a
	// timeout when the given client has none.
	o.httpc = jwk.WrapHTTPClientDefaults(o.httpc)
	if o.fetchTimeout <= 0 {
		return nil, errors.New("identity: fetch timeout must be positive")
	}

	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	cache, err := newPrincipalCache(cfg.ClaimsCacheMaxCost)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}

	base, cancel := context.WithCancel(context.Background())
	v := &Verifier{
		issuers: make(map[string]*trustedIssuer, len(cfg.Issuers)),
		cache:   cache,
		skew:    cfg.ClockSkew,
		clock:   o.clock,
		log:     o.log.With("component", "identity"),
		hooks:   o.hooks,
		cancel:  cancel,

		maxTokenBytes: o.maxTokenBytes,
	}
	for _, ic := range cfg.Issuers {
		v.order = append(v.order, ic.Issuer)
		accepted := ic.TokenTypes
		if len(accepted) == 0 {
			accepted = DefaultTokenTypes
		}
		types := map[string]bool{}
		for _, t := range accepted {
			types[normalizeTyp(t)] = true
		}
		v.issuers[ic.Issuer] = &trustedIssuer{cfg: ic, tokenTypes: types, keys: &keySource{
			issuer:   ic.Issuer,
			jwksURL:  ic.JWKSURL,
			httpc:    o.httpc,
			timeout:  o.fetchTimeout,
			interval: cfg.JWKSRefreshInterval,
			clock:    o.clock,
			log:      v.log,
			onFetch:  o.hooks.JWKSFetched,
			base:     base,
		}}
	}

	var first sync.WaitGroup
	for _, ti := range v.issuers {
		first.Go(func() {
			if err := ti.keys.refresh(ctx); err != nil {
				v.log.Warn("issuer keys not loaded at start; retrying in background", "issuer", ti.cfg.Issuer, "err", err)
			}
		})
	}
	first.Wait()
	for _, ti := range v.issuers {
		v.wg.Go(func() { ti.keys.run(base) })
	}
	return v, nil
}

// withDefaults validates cfg and fills zero values.
func withDefaults(cfg config.Identity) (config.Identity, error) {
	if len(cfg.Issuers) == 0 {
		return cfg, errors.New("identity.issuers: at least one issuer is required")
	}
	if cfg.ClockSkew < 0 {
		return cfg, fmt.Errorf("identity.clock_skew: %s is negative", cfg.ClockSkew)
	}
	// A zero clock_skew is kept: it means no tolerance, as the README
	// says. The 30s default is applied where the key is absent
	// (config.Load), never in place of an explicit 0.
	if cfg.JWKSRefreshInterval < 0 {
		return cfg, fmt.Errorf("identity.jwks_refresh_interval: %s is negative", cfg.JWKSRefreshInterval)
	}
	if cfg.JWKSRefreshInterval == 0 {
		// Zero only from callers that build the config in code: the file
		// refuses it. One default for both (config.DefaultJWKSRefreshInterval).
		cfg.JWKSRefreshInterval = config.DefaultJWKSRefreshInterval
	}
	if cfg.ClaimsCacheMaxCost < 0 {
		return cfg, fmt.Errorf("identity.claims_cache_max_cost: %d is negative", cfg.ClaimsCacheMaxCost)
	}
	if cfg.ClaimsCacheMaxCost == 0 {
		cfg.ClaimsCacheMaxCost = DefaultClaimsCacheMaxCost
	}
	issuers := make([]config.Issuer, len(cfg.Issuers))
	seen := map[string]int{}
	for i, ic := range cfg.Issuers {
		field := fmt.Sprintf("identity.issuers[%d]", i)
		if err := checkHTTPURL(ic.Issuer); err != nil {
			return cfg, fmt.Errorf("%s.issuer: %w", field, err)
		}
		if j, dup := seen[ic.Issuer]; dup {
			return cfg, fmt.Errorf("%s.issuer: %s is already identity.issuers[%d]", field, ic.Issuer, j)
		}
		seen[ic.Issuer] = i
		// Without an audience any token of the IdP, minted for any
		// application, would be accepted; the agent rule is an audience too.
		if (len(ic.Audiences) == 0 && !ic.AgentAudiences) || slices.Contains(ic.Audiences, "") {
			return cfg, fmt.Errorf("%s.audiences: at least one non-empty audience is required (or agent_audiences)", field)
		}
		if ic.JWKSURL != "" {
			if err := checkHTTPURL(ic.JWKSURL); err != nil {
				return cfg, fmt.Errorf("%s.jwks_url: %w", field, err)
			}
		}
		if ic.GroupsClaim == "" {
			ic.GroupsClaim = DefaultGroupsClaim
		}
		for j, t := range ic.TokenTypes {
			if err := config.CheckTokenType(t); err != nil {
				return cfg, fmt.Errorf("%s.token_types[%d]: %w", field, j, err)
			}
		}
		ic.Audiences = slices.Clone(ic.Audiences)
		ic.TokenTypes = slices.Clone(ic.TokenTypes)
		issuers[i] = ic
	}
	cfg.Issuers = issuers
	return cfg, nil
}

// checkHTTPURL accepts an absolute http or https URL with a host.
func checkHTTPURL(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("is not a URL: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// Ready is nil when every issuer's JWKS has loaded at least once; else an
// error naming each issuer still without keys and why.
func (v *Verifier) Ready() error {
	var errs []error
	for _, iss := range v.order {
		if err := v.issuers[iss].keys.readyErr(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("identity: %w", errors.Join(errs...))
	}
	return nil
}

// Close stops background refreshes and frees the cache. Safe to call twice.
// Verify still answers afterwards, with the keys already loaded and no cache.
func (v *Verifier) Close() {
	v.closeOnce.Do(func() {
		v.cancel()
		v.wg.Wait()
		v.cache.close()
	})
}

// Verify checks rawToken (without the "Bearer " prefix) and returns who it
// names. Every failure is an *Error. A repeated token is served from the
// cache until its exp (at most maxCacheTTL); the returned Principal is
// shared and must not be modified.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (*Principal, error) {
	start := time.Now()
	p, cached, err := v.verify(ctx, rawToken)
	if v.hooks.Verified != nil {
		reason := "ok"
		var verr *Error
		if errors.As(err, &verr) {
			reason = verr.Reason()
		}
		v.hooks.Verified(reason, cached, time.Since(start))
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (v *Verifier) verify(ctx context.Context, raw string) (*Principal, bool, error) {
	if raw == "" {
		return nil, false, invalidToken(ReasonMissing, "bearer token is missing", nil)
	}
	if len(raw) > v.maxTokenBytes {
		return nil, false, invalidToken(ReasonTooLarge, fmt.Sprintf("token exceeds the limit of %d bytes (server.max_header_bytes)", v.maxTokenBytes), nil)
	}
	key := cacheKey(raw)
	if p, ok := v.cache.get(key, v.clock()); ok {
		return p, true, v.checkAgentAudience(p)
	}
	p, err := v.verifyUncached(ctx, raw)
	if err != nil {
		return nil, false, err
	}
	v.cache.put(key, p, v.clock())
	return p, false, v.checkAgentAudience(p)
}

// SetAgentClients replaces the agents' client_ids per issuer URL, which an
// agent_audiences issuer's tokens must name (aud or client). The gateway
// calls it whenever its agents change.
func (v *Verifier) SetAgentClients(byIssuer map[string][]string) {
	m := make(map[string]map[string]bool, len(byIssuer))
	for iss, clients := range byIssuer {
		set := make(map[string]bool, len(clients))
		for _, c := range clients {
			if c != "" {
				set[c] = true
			}
		}
		m[iss] = set
	}
	v.agentClients.Store(&m)
}

// checkAgentAudience applies the Okta MCP adapter's audience rule to a
// token no configured audience accepted: its client, or one of its aud
// values, must be the client_id of an agent bound to its issuer.
func (v *Verifier) checkAgentAudience(p *Principal) error {
	if !p.byAgentAudience {
		return nil
	}
	var clients map[string]bool
	if m := v.agentClients.Load(); m != nil {
		clients = (*m)[p.Issuer]
	}
	if clients[p.ClientID] || slices.ContainsFunc(p.Audience, func(a string) bool { return clients[a] }) {
		return nil
	}
	return invalidToken(ReasonAudience, "token audience is not accepted: neither its aud nor its client is the client_id of an agent of this issuer (identity.issuers[].agent_audiences)", nil)
}

func (v *Verifier) verifyUncached(ctx context.Context, raw string) (*Principal, error) {
	msg, err := jws.Parse([]byte(raw), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, invalidToken(ReasonMalformed, "token is not a compact JWS", err)
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	algHdr, _ := hdr.Algorithm()
	alg, ok := allowedAlgs[algHdr.String()]
	if !ok {
		return nil, invalidToken(ReasonAlgorithm, "token algorithm is not allowed (RS256, PS256, ES256, EdDSA)", nil)
	}
	// RFC 7515 §4.1.11: a recipient must refuse a JWS whose crit names an
	// extension it does not understand, and this verifier understands none.
	// Accepting it would let a producer's meaning ("only valid with ...")
	// silently fall away here.
	if hdr.Has(jws.CriticalKey) {
		return nil, invalidToken(ReasonHeader, "token header crit names extensions this gateway does not understand", nil)
	}

	var claims map[string]any
	if err := json.Unmarshal(msg.Payload(), &claims); err != nil || claims == nil {
		return nil, invalidToken(ReasonMalformed, "token payload is not a JSON object", err)
	}
	iss, _ := claims["iss"].(string)
	ti, ok := v.issuers[iss]
	if !ok {
		return nil, invalidToken(ReasonIssuer, "token issuer is not trusted", nil)
	}
	// An IdP signs ID tokens, logout tokens and ID-JAGs with the same keys
	// as access tokens; typ is what tells them apart (RFC 8725 §3.11), so a
	// token of another type must not pass for an access token here.
	typ, _ := hdr.Type()
	if !ti.tokenTypes[normalizeTyp(typ)] {
		return nil, invalidToken(ReasonTokenType, "token type (JOSE typ header) is not an access-token type accepted for this issuer (identity.issuers[].token_types)", nil)
	}

	kid, _ := hdr.KeyID()
	if err := v.checkSignature(ctx, ti, []byte(raw), alg, kid); err != nil {
		return nil, err
	}
	// sub is checked here, on the decoded claims, rather than left to
	// jwt.Validate: a null or empty sub passes its required-claim check,
	// and every such token would then be one and the same user (sessions
	// and cached backend credentials are keyed by issuer and subject).
	if sub, isString := claims["sub"].(string); claims["sub"] != nil && !isString {
		return nil, claimTypeError("sub", "a string")
	} else if sub == "" {
		return nil, invalidToken(ReasonMissingClaim, "token claim sub is missing, null or empty", nil)
	}

	// Claims are checked only once the signature holds.
	tok, err := jwt.Parse(msg.Payload(), jwt.WithVerify(false), jwt.WithValidate(false))
	if err != nil {
		return nil, invalidToken(ReasonMalformed, "token claims are malformed", err)
	}
	err = jwt.Validate(tok,
		jwt.WithClock(jwt.ClockFunc(v.clock)),
		jwt.WithAcceptableSkew(v.skew),
		jwt.WithIssuer(ti.cfg.Issuer),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
	)
	if err != nil {
		return nil, validationError(err)
	}
	aud, _ := tok.Audience()
	configured := slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(ti.cfg.Audiences, a) })
	if !configured && !ti.cfg.AgentAudiences {
		return nil, invalidToken(ReasonAudience, "token audience is not accepted", nil)
	}
	exp, _ := tok.Expiration()
	p, err := principalFrom(claims, ti.cfg.Issuer, aud, exp, ti.cfg.GroupsClaim)
	if err != nil {
		return nil, err
	}
	if !configured {
		// Accepted, if at all, by the agent rule, decided per Verify.
		p.byAgentAudience = true
		// An Okta org server's ID token names its client only as aud.
		if p.ClientID == "" && len(aud) == 1 {
			p.ClientID = aud[0]
		}
	}
	return p, nil
}

// checkSignature verifies raw with the issuer key named by kid (every
// suitable key when the token has no kid). An unknown kid refreshes the JWKS
// once, rate-limited, so a rotated key is picked up.
//
// The key is handed to jws.WithKey with the allow-listed header alg rather
// than jws.WithKeySet: keys published without "alg" then need no inference,
// and jws.WithAlgorithmMatch pins the header alg regardless.
func (v *Verifier) checkSignature(ctx context.Context, ti *trustedIssuer, raw []byte, alg jwa.SignatureAlgorithm, kid string) error {
	set := ti.keys.keys()
	candidates := keysFor(set, kid, alg)
	if set == nil || (len(candidates) == 0 && kid != "") {
		if err := ti.keys.refreshForUnknownKey(ctx); err != nil && !errors.Is(err, errRefreshLimited) {
			v.log.Warn("jwks refresh for unknown key failed", "issuer", ti.cfg.Issuer, "err", err)
		}
		set = ti.keys.keys()
		candidates = keysFor(set, kid, alg)
	}
	if set == nil {
		return invalidToken(ReasonKeysUnavailable, "signing keys of the token issuer are unavailable", ti.keys.readyErr())
	}
	if len(candidates) == 0 {
		return invalidToken(ReasonUnknownKey, "token signing key is not in the issuer's JWKS", nil)
	}
	var errs []error
	for _, key := range candidates {
		v.signatureChecks.Add(1)
		_, err := jws.Verify(raw, jws.WithKey(alg, key), jws.WithAlgorithmMatch(true))
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return invalidToken(ReasonSignature, "token signature is invalid", errors.Join(errs...))
}

// maxKidlessCandidates bounds the keys tried for a token without kid.
const maxKidlessCandidates = 8

// keysFor lists the keys of set that may verify a token with kid and alg:
// the one with that kid, or (no kid) every key whose alg, if published, is alg.
func keysFor(set jwk.Set, kid string, alg jwa.SignatureAlgorithm) []jwk.Key {
	if set == nil {
		return nil
	}
	suits := func(k jwk.Key) bool {
		ka, ok := k.Algorithm()
		return !ok || ka.String() == alg.String()
	}
	if kid != "" {
		k, ok := set.LookupKeyID(kid)
		if !ok || !suits(k) {
			return nil
		}
		return []jwk.Key{k}
	}
	var out []jwk.Key
	for i := range set.Len() {
		if k, ok := set.Key(i); ok && suits(k) {
			out = append(out, k)
			if len(out) == maxKidlessCandidates {
				break
			}
		}
	}
	return out
}

// normalizeTyp is a typ value as RFC 7515 §4.1.9 compares it: media types
// are case-insensitive, and a value without "/" means "application/" + it.
// An absent typ is "".
func normalizeTyp(typ string) string {
	typ = strings.ToLower(strings.TrimSpace(typ))
	if typ != "" && !strings.Contains(typ, "/") {
		typ = "application/" + typ
	}
	return typ
}

// validationError maps a jwx claim validation error to a safe description.
func validationError(err error) *Error {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return invalidToken(ReasonExpired, "token is expired", err)
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return invalidToken(ReasonNotYetValid, "token is not valid yet (nbf)", err)
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return invalidToken(ReasonIssuedInFuture, "token is issued in the future (iat)", err)
	case errors.Is(err, jwt.InvalidIssuerError()):
		return invalidToken(ReasonIssuer, "token issuer is not trusted", err)
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return invalidToken(ReasonMissingClaim, "token lacks a required claim (exp, sub)", err)
	default:
		return invalidToken(ReasonMalformed, "token claims are invalid", err)
	}
}
