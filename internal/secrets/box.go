package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Box seals small values with AES-256-GCM: a random nonce, then the
// ciphertext. Its associated data binds a sealed value to its place (a
// session id's purpose, a grant's id), so one cannot be moved to another.
// Session ids and the OAuth server's stored IdP tokens both use it.
type Box struct{ aead cipher.AEAD }

// BoxKeyBytes is the key size a Box takes.
const BoxKeyBytes = 32

// NewBox builds a Box from a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != BoxKeyBytes {
		return nil, fmt.Errorf("want a %d-byte key, got %d bytes", BoxKeyBytes, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Seal returns plain sealed under ad.
func (b *Box) Seal(plain, ad []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	nonce := make([]byte, n, n+len(plain)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return b.aead.Seal(nonce, nonce, plain, ad), nil
}

// ErrUnsealable is a value that does not open: tampered, truncated, sealed
// under another key or another ad.
var ErrUnsealable = errors.New("sealed value does not open")

// Open returns what box sealed under ad, or ErrUnsealable.
func (b *Box) Open(box, ad []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(box) < n+b.aead.Overhead() {
		return nil, ErrUnsealable
	}
	plain, err := b.aead.Open(nil, box[:n], box[n:], ad)
	if err != nil {
		return nil, ErrUnsealable
	}
	return plain, nil
}
