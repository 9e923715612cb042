package upstream

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

// Session is what a gateway Mcp-Session-Id carries. Sealing it, rather than
// keeping a table, lets any replica holding the key serve the session.
type Session struct {
	// ID names the session to each replica's IdleTracker. It is random: the
	// sealed string itself changes with every seal, and nothing else in the
	// session is unique to it.
	ID      string `json:"n"`
	Backend string `json:"b"`
	Subject string `json:"s"`
	// Agent is the agent_id the session was opened through. An agent id is
	// not a credential, but a session opened by one agent must not become
	// another's: the policy decided initialize for this agent.
	Agent    string `json:"a"`
	Upstream string `json:"u"`
	// IssuedAt is when the gateway sealed the session (Unix seconds): the
	// start of server.session_max_age, which every replica can check.
	IssuedAt int64 `json:"t"`
	// Elicit: the client declared the elicitation capability at
	// initialize, so the gateway may ask its person to confirm a call.
	Elicit bool `json:"e,omitempty"`
}

// NewSession is a session the gateway is about to hand out at now, with a
// fresh random ID.
func NewSession(backend, subject, agent, upstreamID string, now time.Time) (Session, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return Session{}, fmt.Errorf("new session: %w", err)
	}
	return Session{
		ID: base64.RawURLEncoding.EncodeToString(id), Backend: backend, Subject: subject,
		Agent: agent, Upstream: upstreamID, IssuedAt: now.Unix(),
	}, nil
}

// complete reports whether every field a session is checked by is set: a
// sealed value missing one (a bug, or another purpose's blob) is unusable.
func (s Session) complete() bool {
	return s.ID != "" && s.Backend != "" && s.Subject != "" && s.Agent != "" && s.Upstream != "" && s.IssuedAt > 0
}

// maxIssueSkew is how far in the future a session's IssuedAt may be: the
// replicas' clocks may disagree a little, never by hours.
const maxIssueSkew = time.Minute

// Expired reports whether the session is older than maxAge at now, or
// claims to be issued later than now allows.
func (s Session) Expired(now time.Time, maxAge time.Duration) bool {
	issued := time.Unix(s.IssuedAt, 0)
	return now.Sub(issued) > maxAge || issued.Sub(now) > maxIssueSkew
}

// Sealer seals and opens session ids with AES-256-GCM.
type Sealer struct {
	box *secrets.Box
	// opened remembers the sessions of ids that opened, by the exact id:
	// a client presents the same id on every request, and with one key
	// the same sealed bytes always open to the same session. Only ids that
	// authenticated are added, so a forged or altered id is never found
	// here and goes through the AEAD like any other.
	opened *lru.Cache[string, Session]
}

// DefaultOpenedCacheSize is how many opened session ids a Sealer
// remembers: each costs the id (a few hundred bytes) and its session.
const DefaultOpenedCacheSize = 10_000

// ErrBadSession covers every reason a presented session id cannot be used:
// forged, truncated, sealed with another key or by an older release.
// Callers answer 404 for all.
var ErrBadSession = errors.New("unknown session")

// SessionKeyBytes is the AEAD key size.
const SessionKeyBytes = 32

// sessionAD binds sealed ids to their purpose and format, so a blob sealed
// for anything else with the same key never opens as a session. v2 added
// the agent, issue time and ID: an id sealed by an older release (v1) fails
// authentication and is unknown (404), never half-read.
var sessionAD = []byte("mcpgw session v2")

// NewSealer builds a Sealer from a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	return newSealer(key, DefaultOpenedCacheSize)
}

// newSealer remembers up to openedSize opened ids.
func newSealer(key []byte, openedSize int) (*Sealer, error) {
	if len(key) != SessionKeyBytes {
		return nil, fmt.Errorf("session key: want %d bytes, got %d", SessionKeyBytes, len(key))
	}
	box, err := secrets.NewBox(key)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	opened, err := lru.New[string, Session](openedSize)
	if err != nil {
		// lru.New fails only for a size <= 0.
		panic(err)
	}
	return &Sealer{box: box, opened: opened}, nil
}

// Seal returns an opaque, URL-safe session id (visible ASCII, as MCP
// requires). sess must be complete (see NewSession).
func (s *Sealer) Seal(sess Session) (string, error) {
	if !sess.complete() {
		return "", errors.New("seal session: id, backend, subject, agent, upstream id and issue time are all required")
	}
	plain, err := json.Marshal(sess)
	if err != nil {
		return "", fmt.Errorf("seal session: %w", err)
	}
	sealed, err := s.box.Seal(plain, sessionAD)
	if err != nil {
		return "", fmt.Errorf("seal session: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Open returns the session sealed in id, or ErrBadSession. It does not
// check the session's age (Expired) or use (IdleTracker): callers do, on
// every request, whether the id was opened before or not.
func (s *Sealer) Open(id string) (Session, error) {
	// A sealed session is a few hundred bytes; refuse to decode a huge
	// header before anything else.
	if len(id) > maxSealedLen {
		return Session{}, ErrBadSession
	}
	if sess, ok := s.opened.Get(id); ok {
		return sess, nil
	}
	sess, err := s.open(id)
	if err != nil {
		return Session{}, err
	}
	// Cloned: id may be a view of a request buffer that is reused.
	s.opened.Add(strings.Clone(id), sess)
	return sess, nil
}

// open authenticates and decodes id.
func (s *Sealer) open(id string) (Session, error) {
	blob, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return Session{}, ErrBadSession
	}
	plain, err := s.box.Open(blob, sessionAD)
	if err != nil {
		return Session{}, ErrBadSession
	}
	var sess Session
	if err := json.Unmarshal(plain, &sess); err != nil || !sess.complete() {
		return Session{}, ErrBadSession
	}
	return sess, nil
}

// maxSealedLen bounds the Mcp-Session-Id the gateway tries to open: far above
// any id it seals (backend session ids are short), far below a header limit.
const maxSealedLen = 4096

// DefaultIdleTrackerSize is how many sessions a replica remembers the last
// use of: about 100 bytes each.
const DefaultIdleTrackerSize = 100_000

// IdleTracker enforces server.session_idle_timeout on one replica. A sealed
// session id is stateless and clients keep the id they got at initialize,
// so "last used" cannot travel in the id; it is kept here, in a bounded LRU.
// The limit is therefore per replica: a replica that never served a session,
// or has forgotten it (restart, eviction by newer sessions), counts idleness
// from the first request it sees. server.session_max_age, sealed in the id,
// bounds every session on every replica regardless.
type IdleTracker struct {
	idle  time.Duration
	cache *lru.Cache[string, *idleEntry]
}

type idleEntry struct {
	// last is the Unix time in nanoseconds of the session's last use here.
	last atomic.Int64
	// expired stays set once the session went idle, so a later request
	// cannot revive it by arriving after the limit was noticed.
	expired atomic.Bool
}

// NewIdleTracker remembers up to size sessions (DefaultIdleTrackerSize when
// size <= 0) and ends those unused for longer than idle.
func NewIdleTracker(idle time.Duration, size int) *IdleTracker {
	if size <= 0 {
		size = DefaultIdleTrackerSize
	}
	c, err := lru.New[string, *idleEntry](size)
	if err != nil {
		// lru.New fails only for a size <= 0, excluded above.
		panic(err)
	}
	return &IdleTracker{idle: idle, cache: c}
}

// Use records a use of session id at now and reports whether the session
// may still be used: false once it went more than the idle limit without
// one on this replica (and from then on).
func (t *IdleTracker) Use(id string, now time.Time) bool {
	e, ok := t.cache.Get(id)
	if !ok {
		fresh := &idleEntry{}
		fresh.last.Store(now.UnixNano())
		prev, found, _ := t.cache.PeekOrAdd(id, fresh)
		if !found {
			return true
		}
		e = prev
	}
	if e.expired.Load() {
		return false
	}
	if now.Sub(time.Unix(0, e.last.Load())) > t.idle {
		e.expired.Store(true)
		return false
	}
	// Concurrent uses may store out of order; the difference is the time
	// between two requests in flight together, far below any idle limit.
	e.last.Store(now.UnixNano())
	return true
}

// ParseSessionKey accepts 32 raw bytes, or their base64 (std or URL) or hex text.
func ParseSessionKey(b []byte) ([]byte, error) {
	if len(b) == SessionKeyBytes {
		return b, nil
	}
	text := strings.TrimSpace(string(b))
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if k, err := dec(text); err == nil && len(k) == SessionKeyBytes {
			return k, nil
		}
	}
	return nil, fmt.Errorf("want %d bytes, raw or as base64 or hex text", SessionKeyBytes)
}

// LoadSessionKey reads the key from inline text or a file. ok is false when
// neither is set, and the caller generates an ephemeral key.
func LoadSessionKey(inline, file string) (key []byte, ok bool, err error) {
	switch {
	case inline != "":
		k, err := ParseSessionKey([]byte(inline))
		if err != nil {
			return nil, false, fmt.Errorf("server.session_key: %w", err)
		}
		return k, true, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, false, fmt.Errorf("server.session_key_file: %w", err)
		}
		k, err := ParseSessionKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("server.session_key_file %s: %w", file, err)
		}
		return k, true, nil
	}
	return nil, false, nil
}

// NewSessionKey returns a random key.
func NewSessionKey() ([]byte, error) {
	k := make([]byte, SessionKeyBytes)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate session key: %w", err)
	}
	return k, nil
}
