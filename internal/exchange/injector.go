package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// token is a freshly obtained backend credential.
type token struct {
	value string
	// expiresIn is the server's expires_in (0 when it sent none).
	expiresIn time.Duration
}

// injector is the upstream.Injector shared by every method here: the cache
// and its rules live here, the method's exchange in fetch.
type injector struct {
	x       *Exchanger
	backend string
	method  string
	// perUser: the credential belongs to the caller's user through its
	// agent; otherwise to the gateway itself (client credentials).
	perUser bool
	// scopes is the backend's configured scope set, sorted, space-joined.
	scopes string
	// config fingerprints the backend's auth settings, so an edited backend
	// never reuses a token obtained under its old settings.
	config string
	fetch  func(ctx context.Context, c upstream.Caller) (token, error)
}

var (
	_ upstream.Injector        = (*injector)(nil)
	_ upstream.CredentialKeyer = (*injector)(nil)
)

// key is (backend, its auth settings, scopes) plus, for per-user credentials, (agent, issuer,
// subject): never the token itself, so a user's fresh token reuses the
// backend credential obtained with the previous one.
func (in *injector) key(c upstream.Caller) (string, error) {
	if !in.perUser {
		return cacheKey(in.backend, in.config, in.scopes), nil
	}
	if c.Principal == nil || c.Principal.Subject == "" || c.Principal.Issuer == "" {
		return "", errNoPrincipal
	}
	// The gateway checks this binding before any credential is sought; a
	// caller whose token another issuer minted must not reach an exchange
	// even if a future code path skips that check.
	if c.Agent.Issuer != "" && c.Agent.Issuer != c.Principal.Issuer {
		return "", fmt.Errorf("agents.%s.issuer: the caller's token comes from another issuer; it is not exchanged", c.Agent.Name)
	}
	return cacheKey(in.backend, in.config, in.scopes, c.Agent.ID(), c.Principal.Issuer, c.Principal.Subject), nil
}

// CredentialKey is the cache key of c's credential: upstream.Client
// remembers a backend's refusal of a fresh token under it, so one user's
// refused token does not hold back another's, and a shared (client
// credentials) token's refusal holds back every caller that shares it.
func (in *injector) CredentialKey(c upstream.Caller) (string, bool) {
	key, err := in.key(c)
	return key, err == nil
}

// Inject sets Authorization: Bearer with the backend's token, from the
// cache or from one exchange shared by every concurrent caller of the key.
func (in *injector) Inject(ctx context.Context, req *http.Request, c upstream.Caller) error {
	key, err := in.key(c)
	if err != nil {
		return &upstream.CredentialError{Backend: in.backend, Err: err}
	}
	if e, ok := in.x.cache.get(key, in.x.clock()); ok && serves(e, c) {
		in.x.metrics.CacheLookup(in.backend, true)
		return apply(req, e)
	}
	in.x.metrics.CacheLookup(in.backend, false)
	e, err := in.obtain(ctx, key, c)
	if err != nil {
		return err
	}
	return apply(req, e)
}

// Invalidate drops the cached credential after the backend refused it, so
// the retry exchanges again.
func (in *injector) Invalidate(_ context.Context, c upstream.Caller) {
	key, err := in.key(c)
	if err != nil {
		return
	}
	in.x.cache.del(key)
	in.x.log.Debug("cached credential dropped", "backend", in.backend, "method", in.method)
}

// serves reports whether e may answer c: a token always; a failure only
// for the subject token that caused it.
func serves(e *entry, c upstream.Caller) bool {
	return e.err == nil || e.subjectDigest == sha256.Sum256([]byte(c.Token))
}

func apply(req *http.Request, e *entry) error {
	if e.err != nil {
		return e.err
	}
	req.Header.Set("Authorization", e.header)
	return nil
}

// obtain joins (or starts) the exchange for key. The exchange runs detached
// from ctx, so one caller going away does not fail the others waiting on it;
// each caller still stops waiting when its own ctx ends.
func (in *injector) obtain(ctx context.Context, key string, c upstream.Caller) (*entry, error) {
	ch := in.x.flights.DoChan(key, func() (any, error) {
		return in.exchange(ctx, key, c), nil
	})
	select {
	case r := <-ch:
		return r.Val.(*entry), nil
	case <-ctx.Done():
		return nil, &upstream.CredentialError{Backend: in.backend, Err: fmt.Errorf("waiting for the token exchange: %w", context.Cause(ctx))}
	}
}

// exchange runs one exchange and caches its outcome: the token until
// expires_in minus skew (capped), a failure for FailureTTL.
func (in *injector) exchange(ctx context.Context, key string, c upstream.Caller) *entry {
	now := in.x.clock()
	// A flight that finished between this caller's cache miss and its
	// joining the group has already stored a token.
	if e, ok := in.x.cache.get(key, now); ok && e.err == nil {
		return e
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.x.timeout)
	defer cancel()
	start := time.Now()
	tok, err := in.fetch(fctx, c)
	elapsed := time.Since(start)
	if err != nil {
		ce := in.credentialError(err)
		in.x.metrics.Exchanged(in.backend, in.method, outcome(ce), elapsed)
		// ce's text is safe to log: it never holds token material.
		in.x.log.Warn("token exchange failed", "backend", in.backend, "method", in.method, "code", ce.Code, "err", ce.Err, "elapsed", elapsed)
		e := &entry{err: ce, expiresAt: now.Add(in.x.cfg.FailureTTL), subjectDigest: sha256.Sum256([]byte(c.Token))}
		in.x.cache.set(key, e, in.x.cfg.FailureTTL)
		return e
	}
	in.x.metrics.Exchanged(in.backend, in.method, "ok", elapsed)
	ttl := in.ttl(tok, c, now)
	e := &entry{header: "Bearer " + tok.value, expiresAt: now.Add(ttl)}
	// A token that would expire within the skew is used for this call only.
	in.x.cache.set(key, e, ttl)
	in.x.log.Debug("token obtained", "backend", in.backend, "method", in.method, "ttl", ttl, "elapsed", elapsed)
	return e
}

// ttl is expires_in minus skew, capped by MaxTTL and, for a user's
// credential, by the expiry of the user's own token: a backend credential
// must not outlive the authentication it was derived from.
func (in *injector) ttl(tok token, c upstream.Caller, now time.Time) time.Duration {
	life := defaultUnknownTTL
	if tok.expiresIn > 0 {
		life = tok.expiresIn - in.x.cfg.Skew
	}
	life = min(life, in.x.cfg.MaxTTL)
	if in.perUser && !c.Principal.ExpiresAt.IsZero() {
		life = min(life, c.Principal.ExpiresAt.Sub(now))
	}
	return life
}

// newInjector is the injector of backend b obtaining tokens with fetch.
func (x *Exchanger) newInjector(b config.Backend, method string, perUser bool, scopes []string, fetch func(context.Context, upstream.Caller) (token, error)) *injector {
	return &injector{x: x, backend: b.Name, method: method, perUser: perUser, scopes: strings.Join(scopes, " "), config: fingerprint(b), fetch: fetch}
}

// fingerprint is a digest of what decides which token a backend gets.
// Secrets are inside it only as part of a hash.
func fingerprint(b config.Backend) string {
	raw, err := json.Marshal(struct {
		URL, Method string
		Auth        map[string]any
	}{b.URL, b.AuthMethod, b.AuthConfig})
	if err != nil {
		// Unencodable values cannot come from YAML or JSON; without a
		// digest, every such config gets one namespace of its own.
		return "unfingerprinted:" + b.AuthMethod
	}
	sum := sha256.Sum256(raw)
	return string(sum[:16])
}
