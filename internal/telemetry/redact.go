package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"reflect"
	"strings"

	"github.com/mcpgw/mcpgw/internal/redact"
)

// Redacted replaces every value the redactor hides.
const Redacted = "[REDACTED]"

// maxRedactDepth bounds how deep maps and groups are walked.
const maxRedactDepth = 6

// NewRedactingHandler wraps next so that no record it handles shows a
// secret, as a last line of defence behind code that should not log them:
//   - an attribute (or group) whose key contains token, secret, password,
//     passwd, authorization, cookie, private_key, client_secret, api_key,
//     session_key or assertion (any case, '-' or no separator accepted) has
//     its value replaced;
//   - in the message and every string value, JWT-shaped text (eyJ… with two
//     to four dots) and the credential after "Bearer " are replaced, and
//     every URL loses its userinfo, query values and fragment
//     (redact.Text: a backend URL's ?api_key=… or user:password@);
//   - errors, string slices and maps with string keys (http.Header,
//     url.Values, map[string]any) are walked the same way.
//
// Structs are not walked: NewLogger also scrubs JWTs from the output bytes.
func NewRedactingHandler(next slog.Handler) slog.Handler {
	return &redactingHandler{next: next}
}

type redactingHandler struct {
	next slog.Handler
	// sensitive is set under a group whose name is a sensitive key: every
	// attribute in it is hidden.
	sensitive bool
}

func (h *redactingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, redactString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.redactAttr(a)
	}
	return &redactingHandler{next: h.next.WithAttrs(clean), sensitive: h.sensitive}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{next: h.next.WithGroup(name), sensitive: h.sensitive || sensitiveKey(name)}
}

func (h *redactingHandler) redactAttr(a slog.Attr) slog.Attr {
	if h.sensitive {
		return slog.String(a.Key, Redacted)
	}
	return redactAttr(a, 0)
}

func redactAttr(a slog.Attr, depth int) slog.Attr {
	if sensitiveKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, redactString(v.String()))
	case slog.KindGroup:
		if depth >= maxRedactDepth {
			return slog.String(a.Key, Redacted)
		}
		group := v.Group()
		clean := make([]slog.Attr, len(group))
		for i, g := range group {
			clean[i] = redactAttr(g, depth+1)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
	case slog.KindAny:
		return slog.Attr{Key: a.Key, Value: slog.AnyValue(redactAny(v.Any(), depth))}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// redactAny returns v, or a copy of it with secrets hidden.
func redactAny(v any, depth int) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return redactString(x)
	case error:
		s := x.Error()
		if r := redactString(s); r != s {
			return r
		}
		return x
	case []string:
		return redactStrings(x)
	}
	if depth >= maxRedactDepth {
		return v
	}
	rv := reflect.ValueOf(v)
	switch {
	case rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String:
		out := make(map[string]any, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			k := iter.Key().String()
			if sensitiveKey(k) {
				out[k] = Redacted
				continue
			}
			if val := iter.Value(); val.CanInterface() {
				out[k] = redactAny(val.Interface(), depth+1)
			}
		}
		return out
	case rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.String:
		out := make([]string, rv.Len())
		for i := range out {
			out[i] = redactString(rv.Index(i).String())
		}
		return out
	case rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Interface:
		out := make([]any, rv.Len())
		for i := range out {
			if e := rv.Index(i); e.CanInterface() {
				out[i] = redactAny(e.Interface(), depth+1)
			}
		}
		return out
	}
	return v
}

func redactStrings(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = redactString(s)
	}
	return out
}

// sensitiveKey reports whether an attribute key names a secret. A key that
// names an address (…_url, …_uri, …_endpoint, …_server) holds a URL, not a
// secret, whatever words it contains: target_authorization_server or
// token_endpoint hidden whole leave an operator blind, and their values
// still lose userinfo, query values and fragment (redactString).
func sensitiveKey(key string) bool {
	if namesAddress(key) {
		return false
	}
	for _, needle := range [...]string{
		"token", "secret", "password", "passwd", "authorization", "cookie", "assertion",
		"private_key", "private-key", "privatekey",
		"api_key", "api-key", "apikey",
		"session_key", "session-key", "sessionkey",
	} {
		if containsFold(key, needle) {
			return true
		}
	}
	return false
}

// namesAddress reports whether key ends in a suffix of URL-valued keys.
func namesAddress(key string) bool {
	for _, suffix := range [...]string{"_url", "_uri", "_endpoint", "_server", "-url", "-uri", "-endpoint", "-server"} {
		if len(key) >= len(suffix) && containsFold(key[len(key)-len(suffix):], suffix) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains needle (lower-case ASCII),
// ignoring ASCII case, without allocating.
func containsFold[T string | []byte](s T, needle string) bool {
	n := len(needle)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for j < n && lowerASCII(s[i+j]) == needle[j] {
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// redactString hides JWT-shaped text, bearer credentials and the secrets
// URLs carry in s. It is hand-written rather than a regexp so that it needs
// no package state, makes one pass per kind, and returns s itself (no
// allocation) when there is nothing to hide.
func redactString(s string) string {
	return redact.Text(redactCredentials(s))
}

// redactCredentials hides JWT-shaped text and bearer credentials in s.
func redactCredentials(s string) string {
	if !strings.Contains(s, "eyJ") && !containsFold(s, "bearer") {
		return s
	}
	var b strings.Builder
	last := 0 // s[last:i] is still to copy
	for i := 0; i < len(s); {
		if end := jwtEnd(s, i); end > i {
			b.WriteString(s[last:i])
			b.WriteString(Redacted)
			i, last = end, end
			continue
		}
		if start, end := bearerCredential(s, i); end > start {
			b.WriteString(s[last:start])
			b.WriteString(Redacted)
			i, last = end, end
			continue
		}
		i++
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// jwtEnd returns the end of a JWS or JWE compact serialization starting at
// i ("eyJ" header, then two or four more dot-separated base64url parts,
// possibly empty, as in a detached or unsigned JWS), or i when there is none.
func jwtEnd(s string, i int) int {
	if !strings.HasPrefix(s[i:], "eyJ") {
		return i
	}
	j := skipBase64URL(s, i+3)
	dots := 0
	for dots < 4 && j < len(s) && s[j] == '.' {
		j = skipBase64URL(s, j+1)
		dots++
	}
	if dots < 2 {
		return i
	}
	return j
}

// minBearerCredential keeps `Bearer error="invalid_token"` and
// `Bearer realm=...` (WWW-Authenticate) readable: credentials are longer.
const minBearerCredential = 16

// bearerCredential returns the span of the credential after "Bearer " at i
// (RFC 6750 b64token), or i, i when there is none.
func bearerCredential(s string, i int) (int, int) {
	const word = "bearer"
	if i+len(word) >= len(s) || !containsFold(s[i:i+len(word)], word) {
		return i, i
	}
	j := i + len(word)
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j == i+len(word) {
		return i, i
	}
	start := j
	for j < len(s) && isB64Token(s[j]) {
		j++
	}
	for j < len(s) && s[j] == '=' {
		j++
	}
	if j-start < minBearerCredential {
		return i, i
	}
	return start, j
}

func skipBase64URL(s string, j int) int {
	for j < len(s) && isBase64URL(s[j]) {
		j++
	}
	return j
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

func isB64Token(c byte) bool {
	return isBase64URL(c) || c == '.' || c == '~' || c == '+' || c == '/'
}

// scrubWriter hides JWT-shaped text, bearer credentials and URL secrets in
// every write: a handler writes one whole record per Write, so this catches
// what the attribute walk cannot see (struct fields, Stringers,
// TextMarshalers). A URL in encoded output ends at the escaping backslash
// or quote, so the record stays valid JSON.
type scrubWriter struct{ w io.Writer }

func (s scrubWriter) Write(p []byte) (int, error) {
	if !bytes.Contains(p, []byte("eyJ")) && !containsFold(p, "bearer") && !bytes.Contains(p, []byte("://")) {
		return s.w.Write(p)
	}
	if _, err := io.WriteString(s.w, redactString(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
