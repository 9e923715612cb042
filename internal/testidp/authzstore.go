package testidp

import (
	"slices"
	"sync"
	"time"
)

// session is one sign-in of a user at a client: what an authorization code
// and every refresh token descending from it carry.
type session struct {
	ClientID, Username string
	Scopes             []string
	AuthTime           time.Time
	// Family names the code and every refresh token rotated from it, so
	// that a replay can revoke them all (RFC 9700 §4.14.2).
	Family string
}

type codeGrant struct {
	session
	RedirectURI, CodeChallenge, Nonce string
	expires                           time.Time
	used                              bool
}

type refreshGrant struct {
	session
	expires time.Time
}

// authzStore keeps the pending login requests, the codes and the refresh
// tokens in memory; expired entries are dropped as new ones are added.
type authzStore struct {
	mu       sync.Mutex
	requests map[string]*authRequest
	codes    map[string]*codeGrant
	refresh  map[string]*refreshGrant
	// rotated holds refresh tokens already exchanged, until they would have
	// expired, so their reuse is recognised rather than merely unknown.
	rotated map[string]*refreshGrant
}

func newAuthzStore() *authzStore {
	return &authzStore{
		requests: map[string]*authRequest{},
		codes:    map[string]*codeGrant{},
		refresh:  map[string]*refreshGrant{},
		rotated:  map[string]*refreshGrant{},
	}
}

// purge drops expired entries; the caller holds mu.
func (st *authzStore) purge(now time.Time) {
	for k, v := range st.requests {
		if now.After(v.expires) {
			delete(st.requests, k)
		}
	}
	for k, v := range st.codes {
		// A used code is kept as long as a refresh token of its family
		// could live, so a late replay still revokes the family.
		if now.After(v.expires) && (!v.used || now.After(v.AuthTime.Add(RefreshTokenTTL))) {
			delete(st.codes, k)
		}
	}
	for _, m := range []map[string]*refreshGrant{st.refresh, st.rotated} {
		for k, v := range m {
			if now.After(v.expires) {
				delete(m, k)
			}
		}
	}
}

func (st *authzStore) addPending(req *authRequest) string {
	id := randomToken()
	now := time.Now()
	req.expires = now.Add(LoginRequestTTL)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.purge(now)
	st.requests[id] = req
	return id
}

func (st *authzStore) pending(id string) (*authRequest, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	req, ok := st.requests[id]
	if !ok || time.Now().After(req.expires) {
		return nil, false
	}
	return req, true
}

// takePending removes the request and reports whether it was still there.
func (st *authzStore) takePending(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.requests[id]
	delete(st.requests, id)
	return ok
}

func (st *authzStore) addCode(code string, g *codeGrant) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.purge(time.Now())
	st.codes[code] = g
}

// redeemCode marks the code used and returns its grant. A code is used by
// its first presentation, whatever that request's outcome; a second one is
// refused and revokes every refresh token issued from the code
// (RFC 6749 §4.1.2).
func (st *authzStore) redeemCode(code string) (*codeGrant, *OAuthError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	g, ok := st.codes[code]
	switch {
	case !ok:
		return nil, invalidGrant("unknown authorization code")
	case g.used:
		st.revokeFamily(g.Family)
		return nil, invalidGrant("authorization code was already used")
	}
	g.used = true
	if time.Now().After(g.expires) {
		return nil, invalidGrant("authorization code expired")
	}
	return g, nil
}

func (st *authzStore) addRefresh(token string, sess session) {
	now := time.Now()
	sess.Scopes = slices.Clone(sess.Scopes)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.purge(now)
	st.refresh[token] = &refreshGrant{session: sess, expires: now.Add(RefreshTokenTTL)}
}

// rotateRefresh retires token, which must be clientID's and pass check, and
// returns its session: the caller issues the next token of the family. A
// refused request leaves the token as it was; a retired token presented
// again revokes the whole family.
func (st *authzStore) rotateRefresh(token, clientID string, check func(session) *OAuthError) (session, *OAuthError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if g, ok := st.rotated[token]; ok {
		st.revokeFamily(g.Family)
		return session{}, invalidGrant("refresh token was already used")
	}
	g, ok := st.refresh[token]
	if !ok || time.Now().After(g.expires) {
		return session{}, invalidGrant("unknown or expired refresh token")
	}
	// RFC 6749 §6: the token must have been issued to the authenticated
	// client. Another client's attempt leaves it usable by its owner.
	if g.ClientID != clientID {
		return session{}, invalidGrant("refresh token was issued to another client")
	}
	if oerr := check(g.session); oerr != nil {
		return session{}, oerr
	}
	delete(st.refresh, token)
	st.rotated[token] = g
	return g.session, nil
}

// revokeFamily drops every live refresh token of family; the caller holds mu.
func (st *authzStore) revokeFamily(family string) {
	for k, v := range st.refresh {
		if v.Family == family {
			delete(st.refresh, k)
			st.rotated[k] = v
		}
	}
}
