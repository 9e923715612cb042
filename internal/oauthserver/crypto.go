package oauthserver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
)

// randomToken is 256 bits of randomness, base64url: codes, refresh tokens,
// ids, PKCE verifiers.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashOf is how secrets are looked up in the store: only their hash is
// kept, under a label per kind so that one kind of secret can never be
// presented as another (a code as a refresh token).
func hashOf(kind, secret string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + secret))
	return hex.EncodeToString(sum[:])
}

// s256 is the PKCE S256 challenge of verifier (RFC 7636 §4.2).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// pkceMatches checks a verifier's form (RFC 7636 §4.1) and its challenge
// in constant time.
func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, r := range verifier {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' || r == '~') {
			return false
		}
	}
	return subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(challenge)) == 1
}

// mac authenticates a form value with the server's key.
func (s *Server) mac(parts ...string) string {
	h := hmac.New(sha256.New, s.macKey)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func (s *Server) macOK(got string, parts ...string) bool {
	return hmac.Equal([]byte(got), []byte(s.mac(parts...)))
}

// seal encrypts plain at rest, bound to its row (bind).
func (s *Server) seal(plain []byte, bind string) ([]byte, error) {
	return s.box.Seal(plain, []byte(bind))
}

// open reverses seal.
func (s *Server) open(box []byte, bind string) ([]byte, error) {
	plain, err := s.box.Open(box, []byte(bind))
	if err != nil {
		return nil, errors.New("sealed value does not open with this key (was server.session_key changed?)")
	}
	return plain, nil
}
