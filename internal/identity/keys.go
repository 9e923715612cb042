package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"golang.org/x/sync/singleflight"

	"github.com/mcpgw/mcpgw/internal/oauthmeta"
)

// unknownKeyRefreshInterval bounds refreshes caused by tokens whose kid is
// not in the JWKS: at most one per interval per issuer, so a flood of forged
// kids cannot turn the gateway into a JWKS hammer.
const unknownKeyRefreshInterval = 30 * time.Second

// Backoff of the background loop after a failed fetch.
const (
	retryMinBackoff = time.Second
	retryMaxBackoff = 30 * time.Second
)

// errRefreshLimited means an unknown-kid refresh was skipped because one ran
// less than unknownKeyRefreshInterval ago.
var errRefreshLimited = errors.New("jwks refresh rate-limited")

// keySource keeps one issuer's JWKS: fetched at start, refreshed in the
// background, and refreshed on demand (rate-limited) when a token names an
// unknown kid.
//
// It is written on jwk.Fetch rather than jwk.Cache because the gateway needs
// three things jwk.Cache (httprc) does not give: the cause of a failed fetch
// for Ready(), a prompt retry after a failed first fetch (httprc waits its
// minimum interval), and a shared in-flight fetch under a rate limit for
// unknown kids.
type keySource struct {
	issuer string
	// jwksURL is configured or discovered; guarded by mu.
	jwksURL string

	httpc    *http.Client
	timeout  time.Duration
	interval time.Duration
	clock    func() time.Time
	log      *slog.Logger
	onFetch  func(issuer string, err error)

	set atomic.Pointer[jwk.Set]

	mu         sync.Mutex
	lastErr    error
	lastForced time.Time // clock time of the last unknown-kid refresh

	flight singleflight.Group
	// base bounds every fetch; cancelled by Close so no fetch outlives the Verifier.
	base context.Context
}

// keys is the last JWKS loaded, nil before the first successful fetch.
func (k *keySource) keys() jwk.Set {
	if p := k.set.Load(); p != nil {
		return *p
	}
	return nil
}

// readyErr is nil once keys were loaded; else why not.
func (k *keySource) readyErr() error {
	if k.keys() != nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lastErr != nil {
		return fmt.Errorf("issuer %s: %w: %w", k.issuer, ErrKeysUnavailable, k.lastErr)
	}
	return fmt.Errorf("issuer %s: %w: first fetch not finished", k.issuer, ErrKeysUnavailable)
}

// refresh fetches the JWKS now, joining a fetch already in flight. The fetch
// runs under the source's own deadline, so one caller giving up does not
// abort it for the others; ctx only bounds how long this caller waits.
func (k *keySource) refresh(ctx context.Context) error {
	ch := k.flight.DoChan("fetch", func() (any, error) {
		fctx, cancel := context.WithTimeout(k.base, k.timeout)
		defer cancel()
		return nil, k.fetch(fctx)
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return fmt.Errorf("issuer %s: waiting for jwks: %w", k.issuer, ctx.Err())
	}
}

// refreshForUnknownKey refreshes unless an unknown-kid refresh ran within
// unknownKeyRefreshInterval. Callers arriving while one is in flight wait for
// it, so a burst of tokens with a freshly rotated kid all see the new key.
func (k *keySource) refreshForUnknownKey(ctx context.Context) error {
	ch := k.flight.DoChan("unknown-kid", func() (any, error) {
		k.mu.Lock()
		now := k.clock()
		limited := !k.lastForced.IsZero() && now.Sub(k.lastForced) < unknownKeyRefreshInterval
		if !limited {
			k.lastForced = now
		}
		k.mu.Unlock()
		if limited {
			return nil, errRefreshLimited
		}
		return nil, k.refresh(k.base)
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return fmt.Errorf("issuer %s: waiting for jwks: %w", k.issuer, ctx.Err())
	}
}

func (k *keySource) fetch(ctx context.Context) error {
	err := k.fetchOnce(ctx)
	k.mu.Lock()
	k.lastErr = err
	k.mu.Unlock()
	if k.onFetch != nil {
		k.onFetch(k.issuer, err)
	}
	if err != nil {
		k.log.Warn("jwks fetch failed", "issuer", k.issuer, "err", err)
		return err
	}
	return nil
}

func (k *keySource) fetchOnce(ctx context.Context) error {
	k.mu.Lock()
	u := k.jwksURL
	k.mu.Unlock()
	if u == "" {
		md, err := oauthmeta.Fetch(ctx, k.httpc, k.issuer, oauthmeta.JWKSURI)
		if err != nil {
			return fmt.Errorf("discover jwks_uri: %w", err)
		}
		k.mu.Lock()
		k.jwksURL = md.JwksURI
		k.mu.Unlock()
		u = md.JwksURI
		k.log.Info("discovered jwks_uri", "issuer", k.issuer, "jwks_uri", u)
	}
	fetched, err := jwk.Fetch(ctx, u, jwk.WithHTTPClient(k.httpc))
	if err != nil {
		return fmt.Errorf("fetch jwks %s: %w", u, err)
	}
	set, err := signingKeys(fetched)
	if err != nil {
		return fmt.Errorf("jwks %s: %w", u, err)
	}
	k.set.Store(&set)
	k.log.Debug("jwks loaded", "issuer", k.issuer, "keys", set.Len())
	return nil
}

// signingKeys keeps the usable asymmetric signature keys of a JWKS. A
// symmetric key in a JWKS is public knowledge, never a verification key.
func signingKeys(fetched jwk.Set) (jwk.Set, error) {
	out := jwk.NewSet()
	for i := range fetched.Len() {
		key, ok := fetched.Key(i)
		if !ok {
			continue
		}
		if key.KeyType() == jwa.OctetSeq() {
			continue
		}
		if use, ok := key.KeyUsage(); ok && use != string(jwk.ForSignature) {
			continue
		}
		if err := out.AddKey(key); err != nil {
			return nil, fmt.Errorf("add key: %w", err)
		}
	}
	if out.Len() == 0 {
		return nil, errors.New("no asymmetric signing keys")
	}
	return out, nil
}

// run refreshes every interval until ctx ends; after a failure it retries
// with a backoff from retryMinBackoff to retryMaxBackoff.
func (k *keySource) run(ctx context.Context) {
	backoff := retryMinBackoff
	for {
		wait := k.interval
		k.mu.Lock()
		failed := k.lastErr != nil || k.keys() == nil
		k.mu.Unlock()
		if failed {
			wait = min(backoff, k.interval)
			backoff = min(2*backoff, retryMaxBackoff)
		} else {
			backoff = retryMinBackoff
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		_ = k.refresh(ctx)
	}
}
