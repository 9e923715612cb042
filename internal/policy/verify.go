package policy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
)

// BundleCheck names the check a bundle failed.
type BundleCheck string

// The checks of VerifyBundle, in the order they run.
const (
	CheckLimits           BundleCheck = "over limits"
	CheckUnreadable       BundleCheck = "unreadable bundle"
	CheckMissingSignature BundleCheck = "missing signature"
	CheckBadSignature     BundleCheck = "malformed signature"
	CheckWrongKey         BundleCheck = "wrong key"
	CheckUnsignedFile     BundleCheck = "unsigned file"
	CheckDigestMismatch   BundleCheck = "digest mismatch"
	CheckMissingFile      BundleCheck = "missing file"
	CheckBadManifest      BundleCheck = "bad manifest"
	CheckCompile          BundleCheck = "does not compile"
)

// BundleError says which check a bundle failed and why.
type BundleError struct {
	Check BundleCheck
	Err   error
}

func (e *BundleError) Error() string { return string(e.Check) + ": " + e.Err.Error() }
func (e *BundleError) Unwrap() error { return e.Err }

func failed(check BundleCheck, format string, args ...any) error {
	return &BundleError{Check: check, Err: fmt.Errorf(format, args...)}
}

// VerifyOptions says what a bundle must be signed with.
type VerifyOptions struct {
	// Key is the public key, as PEM text or a path to a PEM file.
	Key string
	// KeyID, when set, is the key id the signature must name; empty accepts
	// the one it names (the key must still verify it).
	KeyID string
	// Algorithm is the signing algorithm expected (default RS256). It is
	// never taken from the bundle: a bundle that chose HS256 could otherwise
	// have been "signed" with the public key as an HMAC secret.
	Algorithm string
	// Limits are the bundle limits the gateway will apply (zero fields: the
	// defaults): a bundle over them is refused before it is expanded.
	Limits BundleLimits
}

// BundleReport describes a bundle that passed every check.
type BundleReport struct {
	Revision string `json:"revision"`
	// Roots are the manifest's roots; nil when the manifest declares none
	// or the root "" (the bundle then owns all of data).
	Roots []string `json:"roots"`
	// KeyID is the kid the signature names; empty when it names none.
	KeyID     string       `json:"key_id"`
	Algorithm string       `json:"algorithm"`
	Files     []SignedFile `json:"files"`
}

// SignedFile is one file listed in a bundle's signature.
type SignedFile struct {
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	Hash      string `json:"hash"`
}

// VerifyBundle checks a bundle file the way the gateway will before it
// activates one, step by step so that a failure names its step: the
// signature must exist and verify with the key, every file must match its
// signed digest and no file may be missing or extra, the manifest must name
// a revision and roots that cover the bundle, and the policy must compile.
// A failure is a *BundleError. The signature checks are OPA's own.
func VerifyBundle(path string, o VerifyOptions) (*BundleReport, error) {
	if err := o.Limits.validate(); err != nil {
		return nil, err
	}
	limits := o.Limits.withDefaults()
	raw, err := readBundleFile(path, limits)
	if le := new(LimitError); errors.As(err, &le) {
		return nil, &BundleError{Check: CheckLimits, Err: le}
	}
	if pe := new(fs.PathError); errors.As(err, &pe) {
		return nil, err
	}
	if err != nil {
		return nil, failed(CheckUnreadable, "%w", err)
	}
	files, signatures, err := readTarball(raw, limits)
	if err != nil {
		return nil, err
	}
	if signatures == nil {
		return nil, failed(CheckMissingSignature, "bundle has no .signatures.json: it was built without --signing-key")
	}
	var sc bundle.SignaturesConfig
	if err := json.Unmarshal(signatures, &sc); err != nil {
		return nil, failed(CheckBadSignature, ".signatures.json: %w", err)
	}
	if len(sc.Signatures) != 1 {
		return nil, failed(CheckBadSignature, ".signatures.json holds %d signatures, want exactly one", len(sc.Signatures))
	}
	msg, err := jws.Parse([]byte(sc.Signatures[0]))
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, failed(CheckBadSignature, ".signatures.json: not a compact JWS: %v", err)
	}
	headers := msg.Signatures()[0].ProtectedHeaders()
	kid, _ := headers.KeyID()
	alg, _ := headers.Algorithm()
	wantAlg := cmp.Or(o.Algorithm, "RS256")
	if !keys.IsSupportedAlgorithm(wantAlg) {
		return nil, fmt.Errorf("algorithm %q is not supported", wantAlg)
	}
	if alg.String() != wantAlg {
		return nil, failed(CheckWrongKey, "signed with %s, expected %s", alg, wantAlg)
	}
	if o.KeyID != "" && kid != "" && kid != o.KeyID {
		return nil, failed(CheckWrongKey, "signed by key id %q, not %q", kid, o.KeyID)
	}
	keyID := cmp.Or(o.KeyID, kid, defaultKeyID)
	pem, err := readKey(o.Key)
	if err != nil {
		return nil, err
	}
	vc := bundle.NewVerificationConfig(map[string]*keys.Config{keyID: {Key: pem, Algorithm: wantAlg}}, keyID, "", nil)
	signed, err := bundle.VerifyBundleSignature(sc, vc)
	if err != nil {
		return nil, failed(CheckWrongKey, "signature does not verify with the key given: %w", err)
	}

	report := &BundleReport{KeyID: kid, Algorithm: wantAlg}
	for _, name := range slices.Sorted(maps.Keys(signed)) {
		f := signed[name]
		report.Files = append(report.Files, SignedFile{Name: f.Name, Algorithm: f.Algorithm, Hash: f.Hash})
	}
	unchecked := maps.Clone(signed)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if _, ok := signed[name]; !ok {
			return nil, failed(CheckUnsignedFile, "%s is in the bundle but not in its signature", name)
		}
		if err := bundle.VerifyBundleFile(name, *files[name], unchecked); err != nil {
			return nil, failed(CheckDigestMismatch, "%w", err)
		}
	}
	if len(unchecked) > 0 {
		return nil, failed(CheckMissingFile, "signed but not in the bundle: %s", strings.Join(slices.Sorted(maps.Keys(unchecked)), ", "))
	}

	// OPA's own reader, verifying once more, parses the manifest and the
	// modules and checks that the roots cover them.
	b, err := bundle.NewReader(bytes.NewReader(raw)).
		WithBundleVerificationConfig(vc).
		WithProcessAnnotations(true).
		Read()
	if err != nil {
		if strings.Contains(err.Error(), "manifest") {
			return nil, failed(CheckBadManifest, "%w", err)
		}
		return nil, failed(CheckUnreadable, "%w", err)
	}
	if b.Manifest.Revision == "" {
		return nil, failed(CheckBadManifest, "%w", errNoRevision)
	}
	report.Revision = b.Manifest.Revision
	if b.Manifest.Roots != nil && !slices.Equal(*b.Manifest.Roots, []string{""}) {
		report.Roots = slices.Clone(*b.Manifest.Roots)
	}
	if err := compileBundle(&b); err != nil {
		return nil, failed(CheckCompile, "%w", err)
	}
	return report, nil
}

// readTarball returns a bundle file's files by path (without the leading
// slash, as signatures name them) and its .signatures.json, nil if absent.
func readTarball(raw []byte, limits BundleLimits) (map[string]*bytes.Buffer, []byte, error) {
	// readBundleFile checked the limits; OPA's own per-file limit again, as
	// when the gateway reads a bundle.
	loader := bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(raw), "").
		WithSizeLimitBytes(limits.FileBytes)
	files := map[string]*bytes.Buffer{}
	var signatures []byte
	for {
		f, err := loader.NextFile()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, failed(CheckUnreadable, "not a gzipped tar bundle: %w", err)
		}
		var buf bytes.Buffer
		_, err = f.Read(&buf, limits.FileBytes)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, failed(CheckUnreadable, "%s: %w", f.Path(), err)
		}
		name := strings.TrimPrefix(f.Path(), "/")
		if bundle.IsSignaturesFile(name) {
			if signatures != nil {
				return nil, nil, failed(CheckBadSignature, "bundle holds more than one .signatures.json")
			}
			signatures = buf.Bytes()
			continue
		}
		if _, dup := files[name]; dup {
			return nil, nil, failed(CheckUnreadable, "%s appears twice in the bundle", name)
		}
		files[name] = &buf
	}
	if len(files) == 0 && signatures == nil {
		return nil, nil, failed(CheckUnreadable, "the bundle is empty")
	}
	return files, signatures, nil
}

// compileBundle compiles a bundle's modules as OPA would on activation.
func compileBundle(b *bundle.Bundle) error {
	modules := make(map[string]*ast.Module, len(b.Modules))
	for _, m := range b.Modules {
		modules[m.Path] = m.Parsed
	}
	c := ast.NewCompiler()
	if c.Compile(modules); c.Failed() {
		return c.Errors
	}
	return nil
}
