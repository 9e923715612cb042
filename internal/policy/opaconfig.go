package policy

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/plugins"
	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

// sourceKind says where the engine's policy comes from.
type sourceKind int

const (
	// sourceDir is a directory of Rego and data (development), re-read when
	// its files change.
	sourceDir sourceKind = iota
	// sourceFile is a bundle file built by `opa build`, re-verified and
	// swapped when it changes.
	sourceFile
	// sourceURL is the policy.bundle shorthand for a bundle server: it
	// expands to OPA's services, bundles and keys sections.
	sourceURL
	// sourceOPA is policy.opa.bundles, OPA's own configuration, used as is.
	sourceOPA
)

func (k sourceKind) remote() bool { return k == sourceURL || k == sourceOPA }

// The names the policy.bundle URL shorthand gives its OPA configuration.
const (
	shorthandService = "mcpgw-bundle-server"
	// DefaultPersistDir is where the last good downloaded bundle is kept
	// when neither Options.PersistDir nor policy.opa.persistence_directory
	// says otherwise.
	DefaultPersistDir = "bundles/last-good"
	// DefaultPollInterval is how often a bundle file or directory is checked
	// for changes and (shorthand) the shortest delay between two downloads.
	DefaultPollInterval = 10 * time.Second
)

// Plugin sections of OPA's configuration that this gateway does not run,
// with the reason. Everything else in policy.opa reaches OPA unchanged.
var refusedSections = map[string]string{
	"bundle":    "it is OPA's deprecated single-bundle form; use policy.opa.bundles",
	"discovery": "the gateway's policy sources come from its own configuration; use policy.opa.bundles",
	"plugins":   "this build registers no custom OPA plugins",
}

// classifySource tells a bundle server URL from a local file or directory.
// policy.opa.bundles replaces the default local source; a local source
// given explicitly next to it is ambiguous and refused.
func classifySource(source string, opaConfig map[string]any) (sourceKind, error) {
	_, hasBundles := opaConfig["bundles"]
	if scheme, _, ok := strings.Cut(source, "://"); ok {
		switch strings.ToLower(scheme) {
		case "http", "https":
		default:
			return 0, fmt.Errorf("policy.bundle %s: unsupported scheme %q: give a path, an http(s) URL or policy.opa.bundles", source, scheme)
		}
		if hasBundles {
			return 0, errors.New("policy.bundle is a URL and policy.opa.bundles is set: configure the bundle server in one place")
		}
		return sourceURL, nil
	}
	if hasBundles {
		if source != "" && source != DefaultSource {
			return 0, fmt.Errorf("policy.bundle %s and policy.opa.bundles are both set: configure one policy source", source)
		}
		return sourceOPA, nil
	}
	info, err := os.Stat(source)
	if err != nil {
		return 0, fmt.Errorf("policy source %s: %w", source, err)
	}
	if info.IsDir() {
		return sourceDir, nil
	}
	return sourceFile, nil
}

// opaSetup is OPA's configuration as the engine hands it to the plugin
// manager.
type opaSetup struct {
	raw []byte
	// keys is policy.opa.keys, for verifying a local bundle by key_id.
	keys map[string]*keys.Config
	// originals are the configurations of the services whose credentials
	// the bundle guard wraps (remote sources only).
	originals map[string][]byte
}

// buildOPAConfig returns OPA's configuration: policy.opa unchanged, plus
// what the policy.bundle URL shorthand expands to (a service, a bundle
// named "mcpgw" that persists, a verification key) and, for remote sources,
// a persistence directory.
func buildOPAConfig(o *Options, kind sourceKind) (*opaSetup, error) {
	cfg, err := cloneTree(o.OPAConfig)
	if err != nil {
		return nil, fmt.Errorf("policy.opa: %w", err)
	}
	for _, section := range slices.Sorted(maps.Keys(refusedSections)) {
		if v, ok := cfg[section]; ok && v != nil {
			return nil, fmt.Errorf("policy.opa.%s: not supported: %s", section, refusedSections[section])
		}
	}
	configured := map[string]*keys.Config{}
	if k, ok := cfg["keys"]; ok && k != nil {
		kraw, err := json.Marshal(k)
		if err != nil {
			return nil, fmt.Errorf("policy.opa.keys: %w", err)
		}
		if configured, err = keys.ParseKeysConfig(kraw); err != nil {
			return nil, fmt.Errorf("policy.opa.keys: %w", err)
		}
	}

	if kind == sourceURL {
		if err := expandShorthand(o, cfg, configured); err != nil {
			return nil, err
		}
	}
	var originals map[string][]byte
	if kind.remote() {
		if _, ok := cfg["persistence_directory"]; !ok {
			cfg["persistence_directory"] = cmp.Or(o.PersistDir, DefaultPersistDir)
		}
		limitBundleFiles(cfg, o.BundleLimits.withDefaults())
		if originals, err = guardedServices(cfg); err != nil {
			return nil, err
		}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("policy.opa: %w", err)
	}
	return &opaSetup{raw: raw, keys: configured, originals: originals}, nil
}

// expandShorthand adds what policy.bundle: URL, verification_key and key_id
// mean in OPA's terms.
func expandShorthand(o *Options, cfg map[string]any, configured map[string]*keys.Config) error {
	u, err := url.Parse(o.Source)
	if err != nil || u.Host == "" {
		return fmt.Errorf("policy.bundle %s: not a valid URL", secrets.URL(o.Source))
	}
	if u.User != nil {
		return errors.New("policy.bundle: credentials in the URL are not accepted (they would be logged); configure the service under policy.opa.services")
	}
	if err := addService(cfg, map[string]any{"url": u.Scheme + "://" + u.Host}); err != nil {
		return err
	}
	resource := strings.TrimPrefix(u.EscapedPath(), "/")
	if u.RawQuery != "" {
		resource += "?" + u.RawQuery
	}
	every := int64(math.Ceil(cmp.Or(o.PollInterval, DefaultPollInterval).Seconds()))
	source := map[string]any{
		"service":  shorthandService,
		"resource": resource,
		"persist":  true,
		// Jitter between one and two intervals keeps replicas from polling in step.
		"polling": map[string]any{"min_delay_seconds": every, "max_delay_seconds": 2 * every},
	}
	keyID := cmp.Or(o.KeyID, defaultKeyID)
	switch {
	case o.VerificationKey != "":
		pem, err := readKey(o.VerificationKey)
		if err != nil {
			return err
		}
		alg := cmp.Or(o.VerificationAlg, "RS256")
		if !keys.IsSupportedAlgorithm(alg) {
			return fmt.Errorf("policy verification algorithm %q is not supported", alg)
		}
		if _, ok := configured[keyID]; ok {
			return fmt.Errorf("policy.key_id %q is also defined in policy.opa.keys: give the key in one place", keyID)
		}
		ks, _ := cfg["keys"].(map[string]any)
		if ks == nil {
			ks = map[string]any{}
			cfg["keys"] = ks
		}
		ks[keyID] = map[string]any{"key": pem, "algorithm": alg}
		configured[keyID] = &keys.Config{Key: pem, Algorithm: alg}
		source["signing"] = map[string]any{"keyid": keyID}
	case o.KeyID != "":
		if _, ok := configured[o.KeyID]; !ok {
			return fmt.Errorf("policy.key_id %q: no such key in policy.opa.keys", o.KeyID)
		}
		source["signing"] = map[string]any{"keyid": o.KeyID}
	case !o.AllowUnsigned:
		return fmt.Errorf("policy.bundle %s: no verification_key or key_id configured and allow_unsigned is false: refusing an unverified policy", secrets.URL(o.Source))
	}
	cfg["bundles"] = map[string]any{bundleName: source}
	return nil
}

// addService adds the shorthand's bundle server to OPA's services, which
// may be a map keyed by name or a list of named entries.
func addService(cfg map[string]any, svc map[string]any) error {
	switch services := cfg["services"].(type) {
	case nil:
		cfg["services"] = map[string]any{shorthandService: svc}
	case map[string]any:
		if _, ok := services[shorthandService]; ok {
			return fmt.Errorf("policy.opa.services.%s: the name is reserved for the policy.bundle URL", shorthandService)
		}
		services[shorthandService] = svc
	case []any:
		for _, s := range services {
			if m, ok := s.(map[string]any); ok && m["name"] == shorthandService {
				return fmt.Errorf("policy.opa.services: the name %s is reserved for the policy.bundle URL", shorthandService)
			}
		}
		svc["name"] = shorthandService
		cfg["services"] = append(services, svc)
	default:
		return fmt.Errorf("policy.opa.services: want a map or a list, got %T", services)
	}
	return nil
}

// requireSignatures checks, on the manager's parsed configuration, that every
// downloaded bundle must carry a signature, unless unsigned policy is
// allowed. It returns the bundles' names and whether all of them are
// verified.
func requireSignatures(m *plugins.Manager, allowUnsigned bool) ([]string, bool, error) {
	parsed, err := bundleplugin.NewConfigBuilder().
		WithBytes(m.Config.Bundles).
		WithServices(m.Services()).
		WithKeyConfigs(m.PublicKeys()).
		Parse()
	if err != nil {
		return nil, false, fmt.Errorf("policy.opa.bundles: %w", err)
	}
	if parsed == nil || len(parsed.Bundles) == 0 {
		return nil, false, errors.New("policy.opa.bundles: no bundle configured")
	}
	names := slices.Sorted(maps.Keys(parsed.Bundles))
	verified := true
	for _, name := range names {
		src := parsed.Bundles[name]
		if src.Signing != nil && src.Signing.SignatureRequired() {
			continue
		}
		if !allowUnsigned {
			return nil, false, fmt.Errorf("policy.opa.bundles.%s: no signing block: bundle signatures are mandatory (policy.allow_unsigned: true is for development only)", name)
		}
		verified = false
	}
	return names, verified, nil
}

// cloneTree deep-copies a configuration tree, so that expanding the
// shorthand never writes into the caller's config.
func cloneTree(cfg map[string]any) (map[string]any, error) {
	out := map[string]any{}
	if len(cfg) == 0 {
		return out, nil
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// describeSource names a policy source for logs and status.
func describeSource(source string, kind sourceKind) string {
	switch kind {
	case sourceURL:
		return secrets.URL(source)
	case sourceOPA:
		return "policy.opa.bundles"
	}
	return source
}
