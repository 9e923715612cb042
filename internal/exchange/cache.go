package exchange

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// entryOverhead approximates the bytes an entry costs beyond its strings.
const entryOverhead = 160

// entry is one cached outcome: a token or, briefly, a failure. Entries are
// never modified once cached.
type entry struct {
	// header is "Bearer <token>", ready for the hot path.
	header    string
	expiresAt time.Time
	// err is a cached failure (*upstream.CredentialError).
	err error
	// subjectDigest is the SHA-256 of the subject token that failed: a
	// cached failure is served only to the same token, so a user who signs
	// in again is not held back by their expired token's failure.
	subjectDigest [sha256.Size]byte
}

// tokenCache is a ristretto cache whose cost is measured in bytes.
type tokenCache struct {
	c *ristretto.Cache[string, *entry]
}

func newTokenCache(maxCost int64) (*tokenCache, error) {
	// ristretto advises 10 counters per expected entry; tokens are ~1 KiB.
	counters := max(maxCost/1024*10, 1000)
	c, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters:        counters,
		MaxCost:            maxCost,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, err
	}
	return &tokenCache{c: c}, nil
}

// get returns the entry for key unless it has expired at now.
func (tc *tokenCache) get(key string, now time.Time) (*entry, bool) {
	e, ok := tc.c.Get(key)
	if !ok || !now.Before(e.expiresAt) {
		return nil, false
	}
	return e, true
}

// set stores e for ttl and waits until it is visible, so a caller arriving
// right after the exchange finds it instead of exchanging again.
func (tc *tokenCache) set(key string, e *entry, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	cost := int64(len(key)+len(e.header)) + entryOverhead
	if tc.c.SetWithTTL(key, e, cost, ttl) {
		tc.c.Wait()
	}
}

func (tc *tokenCache) del(key string) { tc.c.Del(key) }

func (tc *tokenCache) close() { tc.c.Close() }

// cacheKey joins parts with length prefixes, so no choice of values (a
// subject containing a separator, say) can make two keys collide.
func cacheKey(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p) + binary.MaxVarintLen32
	}
	var sb strings.Builder
	sb.Grow(n)
	var lenBuf [binary.MaxVarintLen64]byte
	for _, p := range parts {
		sb.Write(binary.AppendUvarint(lenBuf[:0], uint64(len(p))))
		sb.WriteString(p)
	}
	return sb.String()
}
