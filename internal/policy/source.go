package policy

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/loader"
)

// DefaultSource is the policy directory used when Options.Source is empty.
const DefaultSource = "policies"

// bundleName is the name the local source is activated under in OPA's store
// (data.system.bundles.mcpgw); remote bundles added later keep their own names.
const bundleName = "mcpgw"

// defaultKeyID is the kid `opa build --signing-key` writes when none is given.
const defaultKeyID = "default"

// loadSource reads a directory of Rego and data, or a bundle file, as an OPA
// bundle, verifying its signature when a key is configured, and gives it a
// revision.
func loadSource(o *Options, configuredKeys map[string]*keys.Config) (*bundle.Bundle, error) {
	info, err := os.Stat(o.Source)
	if err != nil {
		return nil, fmt.Errorf("policy source %s: %w", o.Source, err)
	}
	vc, err := verificationConfig(o, configuredKeys)
	if err != nil {
		return nil, err
	}
	if vc == nil && !o.AllowUnsigned {
		return nil, fmt.Errorf("policy source %s: no verification key configured and allow_unsigned is false: refusing an unverified policy", o.Source)
	}
	// OPA's loader reads every file whole before it checks a signature:
	// check the sizes first, without expanding anything. A bundle file is
	// then loaded from the bytes that were checked.
	limits := o.BundleLimits.withDefaults()
	var raw []byte
	if info.IsDir() {
		err = checkDir(o.Source, limits)
	} else {
		raw, err = readBundleFile(o.Source, limits)
	}
	if le := new(LimitError); errors.As(err, &le) {
		return nil, fmt.Errorf("policy source %s: %w", o.Source, err)
	}
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}

	fl := loader.NewFileLoader().
		WithProcessAnnotation(true).
		WithFilter(skipTestFiles)
	if vc != nil {
		fl = fl.WithBundleVerificationConfig(vc)
	} else {
		// allow_unsigned: a signature that is present cannot be checked without
		// a key, so it is not read at all (as `opa run --skip-verify`).
		fl = fl.WithSkipBundleVerification(true)
	}
	if raw != nil {
		fl = fl.WithReader(bytes.NewReader(raw))
	}
	b, err := fl.AsBundle(o.Source)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}

	if !info.IsDir() {
		// A built bundle must say what it is: every decision record names
		// it, and an unnamed bundle cannot be told from its predecessor.
		if b.Manifest.Revision == "" {
			return nil, fmt.Errorf("policy bundle %s: %w", o.Source, errNoRevision)
		}
		return b, nil
	}
	// A directory has no trustworthy revision of its own (files change
	// without the manifest), so the content names it.
	digest, err := contentDigest(b)
	if err != nil {
		return nil, fmt.Errorf("policy source %s: %w", o.Source, err)
	}
	b.Manifest.Revision = "dir:sha256:" + digest
	return b, nil
}

// errNoRevision refuses a bundle whose .manifest names no revision.
var errNoRevision = errors.New(".manifest has no revision: refusing a policy that cannot be named (build it with opa build --revision)")

// skipTestFiles keeps Rego unit tests out of the running policy, as
// `opa build --ignore '*_test.rego'` does for bundles.
func skipTestFiles(_ string, info fs.FileInfo, _ int) bool {
	return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
}

// verificationConfig returns the bundle verification settings: the
// configured verification key (PEM text or a path to a PEM file) under
// KeyID, else the key named KeyID in OPA's own keys configuration, else nil.
func verificationConfig(o *Options, configuredKeys map[string]*keys.Config) (*bundle.VerificationConfig, error) {
	keyID := cmp.Or(o.KeyID, defaultKeyID)
	if o.VerificationKey != "" {
		pem, err := readKey(o.VerificationKey)
		if err != nil {
			return nil, err
		}
		alg := cmp.Or(o.VerificationAlg, "RS256")
		if !keys.IsSupportedAlgorithm(alg) {
			return nil, fmt.Errorf("policy verification algorithm %q is not supported", alg)
		}
		kc := &keys.Config{Key: pem, Algorithm: alg}
		return bundle.NewVerificationConfig(map[string]*keys.Config{keyID: kc}, keyID, "", nil), nil
	}
	if o.KeyID != "" {
		kc, ok := configuredKeys[o.KeyID]
		if !ok {
			return nil, fmt.Errorf("policy key_id %q: no such key in policy.opa.keys", o.KeyID)
		}
		return bundle.NewVerificationConfig(map[string]*keys.Config{o.KeyID: kc}, o.KeyID, "", nil), nil
	}
	return nil, nil
}

// readKey accepts PEM text or a path to a PEM file. It is not
// keys.NewKeyConfig because that stats the PEM text as a file name, which
// fails for a real key ("file name too long") instead of using it.
func readKey(key string) (string, error) {
	if strings.HasPrefix(strings.TrimSpace(key), "-----BEGIN") {
		return key, nil
	}
	pem, err := os.ReadFile(key)
	if err != nil {
		return "", fmt.Errorf("policy verification_key: %w", err)
	}
	if !strings.Contains(string(pem), "-----BEGIN") {
		return "", fmt.Errorf("policy verification_key %s: not a PEM file", key)
	}
	return string(pem), nil
}

// contentDigest hashes the bundle's modules and data in a stable order; the
// first 12 bytes are plenty to tell two policy versions apart in logs.
func contentDigest(b *bundle.Bundle) (string, error) {
	if b == nil {
		return "", errors.New("no bundle")
	}
	h := sha256.New()
	// Paths relative to the source, so that the same policy has the same
	// revision wherever it is checked out.
	relative := func(m bundle.ModuleFile) string { return cmp.Or(m.RelativePath, m.Path) }
	mods := slices.Clone(b.Modules)
	slices.SortFunc(mods, func(x, y bundle.ModuleFile) int { return strings.Compare(relative(x), relative(y)) })
	for _, m := range mods {
		fmt.Fprintf(h, "module %d %s\n%d\n", len(relative(m)), relative(m), len(m.Raw))
		h.Write(m.Raw)
	}
	data, err := json.Marshal(b.Data) // encoding/json sorts map keys
	if err != nil {
		return "", fmt.Errorf("hash policy data: %w", err)
	}
	fmt.Fprintf(h, "data %d\n", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}
