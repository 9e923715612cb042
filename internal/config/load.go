package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

const defaultListenHost = "127.0.0.1"

// applyDefaults fills keys that no layer set. It runs on the raw tree rather
// than on the decoded struct so that an explicit zero (max_body_bytes: 0)
// stays visible to validation instead of being replaced.
func applyDefaults(raw map[string]any) {
	setDefault(raw, defaultListenHost+":8000", "server", "listen")
	setDefault(raw, 4<<20, "server", "max_body_bytes")
	setDefault(raw, 100, "server", "max_batch_messages")
	setDefault(raw, DefaultMaxHeaderBytes, "server", "max_header_bytes")
	setDefault(raw, "30s", "server", "read_timeout")
	setDefault(raw, "120s", "server", "idle_timeout")
	setDefault(raw, "15s", "server", "shutdown_timeout")
	setDefault(raw, DefaultStreamWriteTimeout.String(), "server", "stream_write_timeout")
	setDefault(raw, DefaultSessionMaxAge.String(), "server", "session_max_age")
	setDefault(raw, DefaultSessionIdleTimeout.String(), "server", "session_idle_timeout")
	setDefault(raw, DefaultClockSkew.String(), "identity", "clock_skew")
	setDefault(raw, DefaultJWKSRefreshInterval.String(), "identity", "jwks_refresh_interval")
	setDefault(raw, 10000, "identity", "claims_cache_max_cost")
	setDefault(raw, DefaultAuditInputRetention.String(), "audit", "input_retention")
	setDefault(raw, "policies", "policy", "bundle")
	setDefault(raw, "50ms", "policy", "timeout")
	setDefault(raw, "10s", "policy", "poll_interval")
	setDefault(raw, "bundles/last-good", "policy", "persist_dir")
	// As policy.DefaultMaxBundle*.
	setDefault(raw, 64<<20, "policy", "max_bundle_bytes")
	setDefault(raw, 256<<20, "policy", "max_bundle_uncompressed_bytes")
	setDefault(raw, 10000, "policy", "max_bundle_files")
	setDefault(raw, 64<<20, "policy", "max_bundle_file_bytes")
	setDefault(raw, "file:mcpgw.db", "store", "dsn")
	setDefault(raw, "5s", "store", "poll_interval")
	setDefault(raw, 1.0, "telemetry", "sample_ratio")
	setDefault(raw, "info", "log", "level")
	setDefault(raw, "json", "log", "format")
	setDefault(raw, DefaultRequestsPerMinute, "ratelimit", "requests_per_minute")
	setDefault(raw, DefaultSessionsPerMinute, "ratelimit", "sessions_per_minute")
	setDefault(raw, DefaultRedisKeyPrefix, "ratelimit", "redis_key_prefix")
	setDefault(raw, DefaultRedisTimeout.String(), "ratelimit", "redis_timeout")
	setDefault(raw, AuditOverflowBlock, "audit", "on_overflow")
	setDefault(raw, DefaultAuditBlockTimeout.String(), "audit", "block_timeout")
	if getRaw(raw, "server", "public_url") == nil {
		listen, _ := getRaw(raw, "server", "listen").(string)
		setDefault(raw, defaultPublicURL(listen), "server", "public_url")
	}
}

// defaultPublicURL is http://<listen>; a wildcard or empty host becomes
// localhost, since no client can dial 0.0.0.0 as a resource identifier.
func defaultPublicURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Load reads the configuration in three layers, each overriding the one
// before: the YAML file at path (with the Okta MCP adapter's gateway:,
// logging: and cache: sections translated, see adapter.go), the adapter's
// environment variables (OKTA_ISSUER or OKTA_DOMAIN [+
// OKTA_AUTHORIZATION_SERVER_ID, OKTA_AUDIENCE], GATEWAY_BASE_URL,
// GATEWAY_HOST, GATEWAY_PORT, LOG_LEVEL), then MCPGW_* variables, where a
// double underscore nests (MCPGW_SERVER__LISTEN is server.listen), list
// values are comma-separated and MCPGW_SESSION_KEY is server.session_key.
// Every MCPGW_* variable is the gateway's (the test harnesses' are
// TEST_POSTGRES and TEST_REDIS). A variable that names no
// key is an error, like an unknown key in the file, and so is an adapter
// variable mcpgw does not honour. Defaults fill whatever no layer set.
//
// path "" falls back to MCPGW_CONFIG, CONFIG_PATH or CONFIG_YAML (the YAML
// itself); with none of them the configuration comes from the environment
// and defaults alone. environ is os.Environ() in production. Find also
// looks in the working directory; Load does not.
//
// Secrets written as "${NAME}" (agents' client_secret and private_key,
// server.session_key, every auth_config value) are replaced by the
// variable's value, and secret *_file keys (private_key_file,
// client_secret_file, auth_config api_key_file, password_file, ...) by the
// file's content; afterwards the plain keys hold the values and the *_file
// keys are gone. Every problem found, in the file, the environment or the
// values, is returned at once, each prefixed with its key path.
func Load(path string, environ []string) (*Config, error) {
	src := Source{Path: path, From: "--config"}
	if path == "" {
		var err error
		if src, err = fromEnvironment(envMap(environ)); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return LoadSource(src, environ)
}

// LoadSource is Load for a source Find chose; a Source that was not found
// loads from the environment alone.
func LoadSource(src Source, environ []string) (*Config, error) {
	cfg, errs := Inspect(src, environ)
	if len(errs) > 0 {
		return nil, fmt.Errorf("config %s: %d problem(s):\n%w", src, len(errs), errors.Join(errs...))
	}
	return cfg, nil
}

// Inspect loads src as LoadSource does and returns every problem found
// instead of an error, with the configuration as far as it could be read
// (nil when the file itself could not be read or parsed), so that a
// migration can be checked whole (mcpgw config check). A configuration
// with problems must not be used to start anything.
func Inspect(src Source, environ []string) (*Config, []error) {
	vars := envMap(environ)
	ko := koanf.New(".")
	switch {
	case src.Path != "":
		if err := ko.Load(file.Provider(src.Path), yaml.Parser()); err != nil {
			return nil, []error{fmt.Errorf("load config %s: %w", src.Path, err)}
		}
	case src.Text != nil:
		if err := ko.Load(yamlText(src.Text), yaml.Parser()); err != nil {
			return nil, []error{fmt.Errorf("load config from %s: %w", src.From, err)}
		}
	}
	raw := ko.Raw()

	errs := translateAdapterFile(raw)
	overrides, envErrs := envOverrides(environ)
	errs = append(errs, envErrs...)
	errs = append(errs, applyAdapterEnv(raw, vars, overrides)...)
	errs = append(errs, applyEnvOverrides(raw, overrides)...)
	applyDefaults(raw)
	errs = append(errs, checkRaw(raw)...)

	cfg, decodeErrs := decode(raw)
	errs = append(errs, decodeErrs...)
	errs = append(errs, cfg.resolveSecrets(func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	})...)
	errs = append(errs, withoutFields(cfg.validate(), decodeErrs)...)
	return cfg, errs
}

// yamlText is a koanf provider of YAML held in memory (CONFIG_YAML).
type yamlText []byte

func (y yamlText) ReadBytes() ([]byte, error) { return y, nil }

func (y yamlText) Read() (map[string]any, error) {
	return nil, errors.New("yamlText: use ReadBytes with a parser")
}

// mcpgwIssuers reports whether MCPGW_* variables configure identity.issuers
// and which issuer URLs they name.
func mcpgwIssuers(overrides []envOverride) (bool, []string) {
	sets, names := false, []string(nil)
	for _, o := range overrides {
		if len(o.segs) >= 2 && o.segs[0] == "identity" && o.segs[1] == "issuers" {
			sets = true
			if len(o.segs) == 4 && o.segs[3] == "issuer" {
				names = append(names, o.value)
			}
		}
	}
	return sets, names
}

func decode(raw map[string]any) (*Config, []error) {
	ko := koanf.New(".")
	// confmap.Read never fails.
	_ = ko.Load(confmap.Provider(raw, ""), nil)
	var c Config
	return &c, decodeErrors(ko.Unmarshal("", &c))
}

// decodeErrors flattens mapstructure's nested, joined errors into one error
// per field, named with the same key paths validation uses.
func decodeErrors(err error) []error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, decodeErrors(e)...)
		}
		return out
	}
	de, ok := err.(*mapstructure.DecodeError)
	if !ok {
		// mapstructure wraps the joined list in "decoding failed due to...".
		if wrapped := errors.Unwrap(err); wrapped != nil {
			return decodeErrors(wrapped)
		}
		return []error{err}
	}
	inner := de.Unwrap()
	if _, joined := inner.(interface{ Unwrap() []error }); joined || errors.As(inner, new(*mapstructure.DecodeError)) {
		return decodeErrors(inner)
	}
	return []error{fmt.Errorf("%s: %w", keyPath(de.Name()), inner)}
}

var bracketKey = regexp.MustCompile(`\[([^\]]*)\]`)

// keyPath turns mapstructure's "backends[hr-system].url" into
// "backends.hr-system.url", keeping list indexes as "[0]".
func keyPath(name string) string {
	return bracketKey.ReplaceAllStringFunc(name, func(m string) string {
		inner := m[1 : len(m)-1]
		if inner != "" && strings.Trim(inner, "0123456789") == "" {
			return m
		}
		return "." + inner
	})
}

// withoutFields drops validation errors about fields that already failed to
// decode: "cannot parse" says more than the zero value's "must be > 0".
func withoutFields(errs, decodeErrs []error) []error {
	if len(decodeErrs) == 0 {
		return errs
	}
	failed := map[string]bool{}
	for _, e := range decodeErrs {
		field, _, _ := strings.Cut(e.Error(), ": ")
		failed[field] = true
	}
	out := errs[:0]
	for _, e := range errs {
		if field, _, _ := strings.Cut(e.Error(), ": "); !failed[field] {
			out = append(out, e)
		}
	}
	return out
}
