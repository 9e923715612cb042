package testidp

import "sync/atomic"

// newGrantCounters makes one counter per registered grant type; the map is
// read-only afterwards, so counting needs no lock.
func newGrantCounters(grants map[string]grantHandler) map[string]*atomic.Int64 {
	out := make(map[string]*atomic.Int64, len(grants))
	for g := range grants {
		out[g] = new(atomic.Int64)
	}
	return out
}

// TokenRequests counts the token requests that named grantType (a
// registered grant), whatever their outcome, so tests can assert how many
// exchanges a client made.
func (s *Server) TokenRequests(grantType string) int64 {
	if c, ok := s.grantRequests[grantType]; ok {
		return c.Load()
	}
	return 0
}
