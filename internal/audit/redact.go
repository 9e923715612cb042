package audit

import (
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/mcpgw/mcpgw/internal/config"
)

// Redacted replaces a secret value that was set; an empty value stays empty,
// so an audit diff still shows whether a secret was present and whether it
// was added or removed, but never its content.
const Redacted = "[REDACTED]"

// urlRedacted stands in for secrets inside URLs, where brackets would be
// percent-encoded.
const urlRedacted = "REDACTED"

// secretKey matches auth_config keys whose values are credentials.
var secretKey = regexp.MustCompile(`(?i)secret|passw|passphrase|key|token|credential|authorization|cookie|bearer|private|signature`)

// notSecretKey matches keys that look secret but name where a secret lives or
// how it is sent (a file path, a header name, an endpoint), which audits need
// to show. URL-valued ones still go through redactURL.
// An authorization server (target_authorization_server) is an address too.
var notSecretKey = regexp.MustCompile(`(?i)(_file|_path|header_name|_header|_url|_uri|_endpoint|_server)$`)

// secretValue matches values that are credentials whatever their key: PEM
// blocks, JWTs, and HTTP authorization values.
var secretValue = regexp.MustCompile(`(?i)^\s*(-----BEGIN |eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.|(bearer|basic|dpop)\s+\S)`)

// RedactAgent returns a copy of a with its client secret and inline private
// key replaced by Redacted. PrivateKeyFile is a path, not a secret, and is kept.
func RedactAgent(a config.Agent) config.Agent {
	a.ClientSecret = redactString(a.ClientSecret)
	a.PrivateKey = redactString(a.PrivateKey)
	a.Scopes = slices.Clone(a.Scopes)
	a.BackendAccess = slices.Clone(a.BackendAccess)
	if a.Enabled != nil {
		enabled := *a.Enabled
		a.Enabled = &enabled
	}
	return a
}

// RedactBackend returns a deep copy of b with credentials removed: auth_config
// values under secret-looking keys (any depth) or holding secret-looking
// strings, and the password and secret query parameters of URLs.
func RedactBackend(b config.Backend) config.Backend {
	b.URL = redactURL(b.URL)
	b.Paths = slices.Clone(b.Paths)
	b.Labels = maps.Clone(b.Labels)
	if b.Enabled != nil {
		enabled := *b.Enabled
		b.Enabled = &enabled
	}
	if b.AuthConfig != nil {
		b.AuthConfig = redactMap(b.AuthConfig)
	}
	return b
}

func redactString(s string) string {
	if s == "" {
		return ""
	}
	return Redacted
}

func redactMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = redactValue(k, v)
	}
	return out
}

func redactValue(key string, v any) any {
	if secretKey.MatchString(key) && !notSecretKey.MatchString(key) {
		if s, ok := v.(string); ok && s == "" {
			return ""
		}
		if v == nil {
			return nil
		}
		return Redacted
	}
	switch t := v.(type) {
	case string:
		if secretValue.MatchString(t) {
			return Redacted
		}
		if strings.Contains(t, "://") {
			return redactURL(t)
		}
		return t
	case map[string]any:
		return redactMap(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = redactValue(key, e)
		}
		return out
	case []string:
		out := make([]string, len(t))
		for i, e := range t {
			out[i], _ = redactValue(key, e).(string)
		}
		return out
	default:
		return v
	}
}

// redactURL removes the password and the values of secret-looking query
// parameters. A string that does not parse as a URL is returned whole only if
// it holds no userinfo marker; otherwise it is replaced, failing closed.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return Redacted
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), urlRedacted)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			if secretKey.MatchString(k) {
				for i := range vs {
					vs[i] = urlRedacted
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
