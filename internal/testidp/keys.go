package testidp

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// rsaKeyBits is the size of generated signing keys.
const rsaKeyBits = 2048

// keyRing holds the signing keys: the current one signs, every one not yet
// retired is published, so tokens signed before a rotation keep verifying.
type keyRing struct {
	mu      sync.RWMutex
	keys    []jwk.Key // private keys, oldest first
	current jwk.Key
}

func newKeyRing() (*keyRing, error) {
	k, err := generateKey()
	if err != nil {
		return nil, err
	}
	return &keyRing{keys: []jwk.Key{k}, current: k}, nil
}

// generateKey makes an RSA private key with alg RS256, use sig and an
// RFC 7638 thumbprint as kid.
func generateKey() (jwk.Key, error) {
	raw, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		return nil, fmt.Errorf("import RSA key: %w", err)
	}
	if err := jwk.AssignKeyID(key); err != nil {
		return nil, fmt.Errorf("assign kid: %w", err)
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.RS256()); err != nil {
		return nil, fmt.Errorf("set alg: %w", err)
	}
	if err := key.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return nil, fmt.Errorf("set use: %w", err)
	}
	return key, nil
}

func (r *keyRing) signingKey() jwk.Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

func (r *keyRing) rotate() (jwk.Key, error) {
	k, err := generateKey()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, k)
	r.current = k
	return k, nil
}

// retire unpublishes kid. The current key cannot be retired: the server
// would have nothing to sign with.
func (r *keyRing) retire(kid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if kidOf(r.current) == kid {
		return false
	}
	before := len(r.keys)
	r.keys = slices.DeleteFunc(r.keys, func(k jwk.Key) bool { return kidOf(k) == kid })
	return len(r.keys) != before
}

// publicSet is the JWKS document: public halves only.
func (r *keyRing) publicSet(omitAlg bool) (jwk.Set, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	set := jwk.NewSet()
	for _, k := range r.keys {
		pub, err := k.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("public key of %s: %w", kidOf(k), err)
		}
		if omitAlg {
			if err := pub.Remove(jwk.AlgorithmKey); err != nil {
				return nil, fmt.Errorf("remove alg of %s: %w", kidOf(k), err)
			}
		}
		if err := set.AddKey(pub); err != nil {
			return nil, fmt.Errorf("add key %s: %w", kidOf(k), err)
		}
	}
	return set, nil
}

func kidOf(k jwk.Key) string {
	kid, _ := k.KeyID()
	return kid
}

// RotateKey makes a new current signing key and returns its kid. The old key
// stays in the JWKS until RetireKey.
func (s *Server) RotateKey() (string, error) {
	k, err := s.keys.rotate()
	if err != nil {
		return "", fmt.Errorf("testidp: rotate key: %w", err)
	}
	s.log.Info("rotated signing key", "kid", kidOf(k))
	return kidOf(k), nil
}

// RetireKey removes kid from the JWKS. Retiring the current signing key is
// refused (logged), since the server would have no key to sign with.
func (s *Server) RetireKey(kid string) {
	if !s.keys.retire(kid) {
		s.log.Warn("retire key: not retired (unknown or current)", "kid", kid)
		return
	}
	s.log.Info("retired signing key", "kid", kid)
}

// SigningKey is the current private key, so tests can forge tokens with it.
func (s *Server) SigningKey() jwk.Key { return s.keys.signingKey() }

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	s.jwksFetches.Add(1)
	set, err := s.keys.publicSet(s.opts.JWKSOmitAlg)
	if err != nil {
		s.log.Error("jwks", "err", err)
		http.Error(w, "jwks unavailable", http.StatusInternalServerError)
		return
	}
	body, err := json.Marshal(set)
	if err != nil {
		s.log.Error("jwks: marshal", "err", err)
		http.Error(w, "jwks unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// Short max-age: rotation in tests should be visible quickly to any
	// verifier that honours Cache-Control.
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(body)
}
