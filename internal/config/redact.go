package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/redact"
)

// redactedMark replaces a secret when a configuration is printed or logged.
const redactedMark = "[REDACTED]"

// Every type here that holds a secret implements fmt.Stringer,
// fmt.GoStringer and slog.LogValuer on its redacted copy, so neither
// fmt.Printf("%v"/"%+v"/"%#v") nor slog can print a secret by accident.

// Redacted returns a copy of c that is safe to print: agents'
// client_secret and private_key, server.session_key, oauth.upstream.client_secret, every auth_config and
// policy.opa key matching secret|password|key|token (case-insensitive; keys
// ending in _file, _url, _uri or _endpoint name places, not secrets), and
// the userinfo, query values and fragment of backend URLs, store.dsn,
// ratelimit.redis_url and telemetry.otlp_endpoint (redact.URL: the one rule every log line, error
// message and trace attribute follows) are masked. An empty secret stays
// empty, so "not set" remains visible. The backends and agents maps are new;
// other slices may share storage with c.
func (c Config) Redacted() Config {
	r := c
	r.Server = c.Server.redacted()
	r.Store = c.Store.redacted()
	r.Policy = c.Policy.redacted()
	r.Telemetry.OTLPEndpoint = redact.URL(c.Telemetry.OTLPEndpoint)
	// A Redis URL may carry its password (redis://:pw@host).
	r.RateLimit.RedisURL = redact.URL(c.RateLimit.RedisURL)
	r.OAuth.Upstream.ClientSecret = mask(c.OAuth.Upstream.ClientSecret)
	if c.Backends != nil {
		r.Backends = make(map[string]Backend, len(c.Backends))
		for k, b := range c.Backends {
			r.Backends[k] = b.redacted()
		}
	}
	if c.Agents != nil {
		r.Agents = make(map[string]Agent, len(c.Agents))
		for k, a := range c.Agents {
			r.Agents[k] = a.redacted()
		}
	}
	return r
}

// String prints the redacted configuration as JSON with the YAML key names.
func (c Config) String() string       { return printable(c.Redacted(), "") }
func (c Config) GoString() string     { return c.String() }
func (c Config) LogValue() slog.Value { return groupValue(c.Redacted(), "") }

func (s Server) redacted() Server {
	s.SessionKey = mask(s.SessionKey)
	return s
}

func (s Server) String() string       { return printable(s.redacted(), "") }
func (s Server) GoString() string     { return s.String() }
func (s Server) LogValue() slog.Value { return groupValue(s.redacted(), "") }

func (s Store) redacted() Store {
	s.DSN = redactDSN(s.DSN)
	return s
}

func (s Store) String() string       { return printable(s.redacted(), "") }
func (s Store) GoString() string     { return s.String() }
func (s Store) LogValue() slog.Value { return groupValue(s.redacted(), "") }

func (p Policy) redacted() Policy {
	p.OPA = redactTree(p.OPA)
	return p
}

func (p Policy) String() string       { return printable(p.redacted(), "") }
func (p Policy) GoString() string     { return p.String() }
func (p Policy) LogValue() slog.Value { return groupValue(p.redacted(), "") }

func (b Backend) redacted() Backend {
	b.URL = redact.URL(b.URL)
	b.AuthConfig = redactTree(b.AuthConfig)
	return b
}

func (b Backend) String() string       { return printable(b.redacted(), b.Name) }
func (b Backend) GoString() string     { return b.String() }
func (b Backend) LogValue() slog.Value { return groupValue(b.redacted(), b.Name) }

func (a Agent) redacted() Agent {
	a.ClientSecret = mask(a.ClientSecret)
	a.PrivateKey = mask(a.PrivateKey)
	return a
}

func (a Agent) String() string       { return printable(a.redacted(), a.Name) }
func (a Agent) GoString() string     { return a.String() }
func (a Agent) LogValue() slog.Value { return groupValue(a.redacted(), a.Name) }

func mask(s string) string {
	if s == "" {
		return ""
	}
	return redactedMark
}

// redactTree copies an auth_config-like tree, masking the scalars (and
// lists of scalars) held under secret keys.
func redactTree(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = redactValue(v, isSecretKey(k))
	}
	return out
}

func redactValue(v any, secret bool) any {
	switch t := v.(type) {
	case map[string]any:
		return redactTree(t)
	case []any:
		out := make([]any, len(t))
		for i, item := range t {
			out[i] = redactValue(item, secret)
		}
		return out
	case nil:
		return nil
	}
	if secret {
		if s, ok := v.(string); ok && s == "" {
			return ""
		}
		return redactedMark
	}
	// A value under any other key may still be a URL carrying credentials
	// (target_authorization_server: https://user:pw@as/...?k=...).
	if s, ok := v.(string); ok {
		return redact.URL(s)
	}
	return v
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactDSN covers both PostgreSQL forms: a URL and "key=value" pairs.
func redactDSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		return redact.URL(dsn)
	}
	return dsnPassword.ReplaceAllString(dsn, "${1}"+redactedMark)
}

// printable renders v (already redacted) as JSON keyed by koanf tags.
func printable(v any, name string) string {
	m := plainMap(v, name)
	b, err := json.Marshal(m)
	if err != nil {
		// Only a NaN or Inf float can get here; the map is already redacted.
		return fmt.Sprintf("%v", m)
	}
	return string(b)
}

func groupValue(v any, name string) slog.Value {
	m := plainMap(v, name)
	attrs := make([]slog.Attr, 0, len(m))
	for _, k := range sortedKeys(m) {
		attrs = append(attrs, slog.Any(k, m[k]))
	}
	return slog.GroupValue(attrs...)
}

func plainMap(v any, name string) map[string]any {
	m, _ := plain(reflect.ValueOf(v)).(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	if name != "" {
		m["name"] = name
	}
	return m
}

// plain turns a config value into maps, slices and scalars keyed by koanf
// tags, dropping zero fields; durations print as "30s".
func plain(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plain(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		for i := range v.NumField() {
			tag := koanfTag(v.Type().Field(i))
			if tag == "" || v.Field(i).IsZero() {
				continue
			}
			m[tag] = plain(v.Field(i))
		}
		return m
	case reflect.Map:
		m := make(map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			m[fmt.Sprint(iter.Key().Interface())] = plain(iter.Value())
		}
		return m
	case reflect.Slice, reflect.Array:
		out := make([]any, v.Len())
		for i := range v.Len() {
			out[i] = plain(v.Index(i))
		}
		return out
	}
	return v.Interface()
}
