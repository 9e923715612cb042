package upstream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Session is what a gateway Mcp-Session-Id carries. Sealing it, rather than
// keeping a table, lets any replica holding the key serve the session.
type Session struct {
	Backend  string `json:"b"`
	Subject  string `json:"s"`
	Upstream string `json:"u"`
}

// Sealer seals and opens session ids with AES-256-GCM.
type Sealer struct {
	aead cipher.AEAD
}

// ErrBadSession covers every reason a presented session id cannot be used:
// forged, truncated, sealed with another key. Callers answer 404 for all.
var ErrBadSession = errors.New("unknown session")

// SessionKeyBytes is the AEAD key size.
const SessionKeyBytes = 32

// sessionAD binds sealed ids to their purpose, so a blob sealed for anything
// else with the same key never opens as a session.
var sessionAD = []byte("mcpgw session v1")

// NewSealer builds a Sealer from a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != SessionKeyBytes {
		return nil, fmt.Errorf("session key: want %d bytes, got %d", SessionKeyBytes, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal returns an opaque, URL-safe session id (visible ASCII, as MCP requires).
func (s *Sealer) Seal(sess Session) (string, error) {
	plain, err := json.Marshal(sess)
	if err != nil {
		return "", fmt.Errorf("seal session: %w", err)
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal session: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, sessionAD)), nil
}

// Open returns the session sealed in id, or ErrBadSession.
func (s *Sealer) Open(id string) (Session, error) {
	blob, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(blob) < s.aead.NonceSize()+s.aead.Overhead() {
		return Session{}, ErrBadSession
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, blob[:n], blob[n:], sessionAD)
	if err != nil {
		return Session{}, ErrBadSession
	}
	var sess Session
	if err := json.Unmarshal(plain, &sess); err != nil {
		return Session{}, ErrBadSession
	}
	return sess, nil
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
