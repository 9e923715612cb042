package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

// Every type here that holds a secret implements fmt.Stringer,
// fmt.GoStringer and slog.LogValuer on its redacted copy, so neither
// fmt.Printf("%v"/"%+v"/"%#v") nor slog can print a secret by accident.
// What is secret, and what stands in for it, is internal/secrets' rule.

// Redacted returns a copy of c that is safe to print: every place the
// package secrets lists is masked (agents' client_secret and private_key,
// server.session_key, oauth.upstream.client_secret, secrets in auth_config and policy.opa trees
// (secrets.Tree), the userinfo, query values and fragment of backend URLs,
// ratelimit.redis_url and telemetry.otlp_endpoint (secrets.URL), and
// store.dsn (secrets.DSN)). An empty secret stays empty, so "not set"
// remains visible. The backends and agents maps are new; other slices may
// share storage with c.
func (c Config) Redacted() Config {
	r := c
	r.Server = c.Server.redacted()
	r.Store = c.Store.redacted()
	r.Policy = c.Policy.redacted()
	r.Telemetry.OTLPEndpoint = secrets.URL(c.Telemetry.OTLPEndpoint)
	// A Redis URL may carry its password (redis://:pw@host).
	r.RateLimit.RedisURL = secrets.URL(c.RateLimit.RedisURL)
	r.OAuth.Upstream.ClientSecret = secrets.Mask(c.OAuth.Upstream.ClientSecret)
	// A collector's headers are its credentials, whatever their names.
	r.Audit.HTTP.URL = secrets.URL(c.Audit.HTTP.URL)
	if c.Audit.HTTP.Headers != nil {
		r.Audit.HTTP.Headers = make(map[string]string, len(c.Audit.HTTP.Headers))
		for k, v := range c.Audit.HTTP.Headers {
			r.Audit.HTTP.Headers[k] = secrets.Mask(v)
		}
	}
	if c.Backends != nil {
		r.Backends = make(map[string]Backend, len(c.Backends))
		for k, b := range c.Backends {
			r.Backends[k] = b.Redacted()
		}
	}
	if c.Agents != nil {
		r.Agents = make(map[string]Agent, len(c.Agents))
		for k, a := range c.Agents {
			r.Agents[k] = a.Redacted()
		}
	}
	return r
}

// String prints the redacted configuration as JSON with the YAML key names.
func (c Config) String() string       { return printable(c.Redacted(), "") }
func (c Config) GoString() string     { return c.String() }
func (c Config) LogValue() slog.Value { return groupValue(c.Redacted(), "") }

func (s Server) redacted() Server {
	s.SessionKey = secrets.Mask(s.SessionKey)
	return s
}

func (s Server) String() string       { return printable(s.redacted(), "") }
func (s Server) GoString() string     { return s.String() }
func (s Server) LogValue() slog.Value { return groupValue(s.redacted(), "") }

func (s Store) redacted() Store {
	s.DSN = secrets.DSN(s.DSN)
	return s
}

func (s Store) String() string       { return printable(s.redacted(), "") }
func (s Store) GoString() string     { return s.String() }
func (s Store) LogValue() slog.Value { return groupValue(s.redacted(), "") }

func (p Policy) redacted() Policy {
	p.OPA = secrets.Tree(p.OPA)
	return p
}

func (p Policy) String() string       { return printable(p.redacted(), "") }
func (p Policy) GoString() string     { return p.String() }
func (p Policy) LogValue() slog.Value { return groupValue(p.redacted(), "") }

// Redacted returns a deep copy of b that is safe to show (printed, logged,
// in an audit record or an admin API response): its URL through
// secrets.URL and its auth_config through secrets.Tree. The copy shares
// nothing mutable with b.
func (b Backend) Redacted() Backend {
	b.URL = secrets.URL(b.URL)
	b.Paths = slices.Clone(b.Paths)
	b.Labels = maps.Clone(b.Labels)
	if b.Enabled != nil {
		enabled := *b.Enabled
		b.Enabled = &enabled
	}
	if b.FederatedPrefix != nil {
		prefix := *b.FederatedPrefix
		b.FederatedPrefix = &prefix
	}
	b.AuthConfig = secrets.Tree(b.AuthConfig)
	return b
}

func (b Backend) String() string       { return printable(b.Redacted(), b.Name) }
func (b Backend) GoString() string     { return b.String() }
func (b Backend) LogValue() slog.Value { return groupValue(b.Redacted(), b.Name) }

// Redacted returns a deep copy of a that is safe to show, its client
// secret and inline private key masked (secrets.Mask). PrivateKeyFile and
// ClientSecretFile are paths, not secrets, and are kept.
func (a Agent) Redacted() Agent {
	a.ClientSecret = secrets.Mask(a.ClientSecret)
	a.PrivateKey = secrets.Mask(a.PrivateKey)
	a.Scopes = slices.Clone(a.Scopes)
	a.BackendAccess = slices.Clone(a.BackendAccess)
	if a.Enabled != nil {
		enabled := *a.Enabled
		a.Enabled = &enabled
	}
	return a
}

func (a Agent) String() string       { return printable(a.Redacted(), a.Name) }
func (a Agent) GoString() string     { return a.String() }
func (a Agent) LogValue() slog.Value { return groupValue(a.Redacted(), a.Name) }

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
