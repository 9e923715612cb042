// Package secrets is the one home of the gateway's rules for secrets: which
// configuration keys hold them, how URLs and DSNs lose theirs, what a
// printed configuration, a log line, an audit record and an admin API GET
// show instead (Placeholder, Mark) and what an admin API PUT that sends the
// placeholder back keeps (Restore).
//
// Where the configuration holds secrets (config.Config.Redacted masks each;
// the admin API and the audit trail show agents and backends through the
// same copy):
//
//   - server.session_key, agents.*.client_secret and agents.*.private_key:
//     the whole value;
//   - backends.*.auth_config and policy.opa (OPA's services, credentials,
//     keys): every value under a key IsSecretKey names, at any depth, and
//     every string that looks like a credential whatever its key
//     (LooksSecret); other strings lose the secrets a URL carries (URL);
//   - backends.*.url, ratelimit.redis_url, telemetry.otlp_endpoint: URL;
//   - store.dsn: DSN.
//
// An empty secret stays empty everywhere, so "not set" remains visible.
//
// It is a leaf package (no imports of the gateway's own) so that config,
// telemetry, audit, store, policy, upstream and the gateway can all use it.
package secrets

import "strings"

// Placeholder replaces a secret value that is set: in printed
// configuration, log attributes, audit records and admin API responses. An
// admin API PUT that sends it back keeps the stored secret (Restore).
const Placeholder = "[REDACTED]"

// Mark replaces a hidden part of a URL. It has no brackets so that a
// redacted URL is still a URL (brackets would be percent-encoded).
const Mark = "REDACTED"

// secretWords are the words that make a key secret, matched anywhere in the
// key, ignoring case ("passw" covers password and passwd;
// "key" covers api_key, X-Api-Key, privateKey and session_key).
var secretWords = [...]string{
	"secret", "passw", "passphrase", "key", "token", "credential", "authorization", "cookie",
	"bearer", "assertion", "private", "signature",
}

// placeSuffixes end keys that name where a value lives, how it is sent or
// which one it is, not the value: a file or path (api_key_file), a header
// name (api_key_header, header_name), an address (token_endpoint,
// target_authorization_server, TOKEN_URL) or an identifier (key_id). Their
// values are shown; strings among them still lose URL secrets. The file,
// path and header forms are the configuration's snake_case: a log
// attribute such as private-key-file stays hidden.
var placeSuffixes = [...]string{
	"_file", "_path", "_header", "header_name",
	"_url", "_uri", "_endpoint", "_server", "_id",
	"-url", "-uri", "-endpoint", "-server", "-id",
}

// IsSecretKey reports whether a configuration key (of auth_config or
// policy.opa, at any depth) or a log attribute key names a secret value.
func IsSecretKey(key string) bool {
	for _, suffix := range placeSuffixes {
		if len(key) >= len(suffix) && strings.EqualFold(key[len(key)-len(suffix):], suffix) {
			return false
		}
	}
	for _, word := range secretWords {
		if containsFold(key, word) {
			return true
		}
	}
	return false
}

// Mask returns Placeholder for a set secret and "" for an unset one.
func Mask(s string) string {
	if s == "" {
		return ""
	}
	return Placeholder
}

// LooksSecret reports whether a string value is a credential whatever key
// holds it: a PEM block, a JWT, or an HTTP authorization value (Bearer,
// Basic or DPoP and a credential).
func LooksSecret(s string) bool {
	s = strings.TrimLeft(s, " \t\r\n")
	if strings.HasPrefix(s, "-----BEGIN ") || jwtEnd(s, 0) > 0 {
		return true
	}
	for _, scheme := range [...]string{"bearer", "basic", "dpop"} {
		if len(s) > len(scheme)+1 && strings.EqualFold(s[:len(scheme)], scheme) {
			rest := s[len(scheme):]
			if rest[0] == ' ' || rest[0] == '\t' {
				if strings.TrimLeft(rest, " \t") != "" {
					return true
				}
			}
		}
	}
	return false
}
