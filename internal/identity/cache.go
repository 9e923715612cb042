package identity

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// maxCacheTTL bounds how long a verified principal is served without a new
// signature check, so a retired key or a config change takes effect soon.
const maxCacheTTL = 5 * time.Minute

// principalCache maps SHA-256(token) to the verified principal. The token
// itself is never stored.
type principalCache struct {
	c *ristretto.Cache[string, *Principal]
}

func newPrincipalCache(maxCost int64) (*principalCache, error) {
	c, err := ristretto.NewCache(&ristretto.Config[string, *Principal]{
		NumCounters:        maxCost * 10, // ristretto's advice: 10× the expected entries
		MaxCost:            maxCost,
		BufferItems:        64,
		IgnoreInternalCost: true, // cost 1 per entry: MaxCost counts principals
		// The key is already a SHA-256 digest: its bytes are the hash.
		KeyToHash: func(k string) (uint64, uint64) {
			return binary.LittleEndian.Uint64([]byte(k[:8])), binary.LittleEndian.Uint64([]byte(k[8:16]))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("claims cache: %w", err)
	}
	return &principalCache{c: c}, nil
}

func cacheKey(rawToken string) string {
	sum := sha256.Sum256([]byte(rawToken))
	return string(sum[:])
}

// get returns the principal cached for key if it has not expired at now.
func (pc *principalCache) get(key string, now time.Time) (*Principal, bool) {
	p, ok := pc.c.Get(key)
	if !ok {
		return nil, false
	}
	if !now.Before(p.ExpiresAt) {
		pc.c.Del(key)
		return nil, false
	}
	return p, true
}

// put caches p until its expiry, at most maxCacheTTL.
func (pc *principalCache) put(key string, p *Principal, now time.Time) {
	ttl := min(p.ExpiresAt.Sub(now), maxCacheTTL)
	if ttl <= 0 {
		return
	}
	pc.c.SetWithTTL(key, p, 1, ttl)
}

func (pc *principalCache) close() { pc.c.Close() }
