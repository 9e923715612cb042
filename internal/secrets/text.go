package secrets

import "strings"

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

// Scrub hides JWT-shaped text (eyJ… with two to four dots), the
// credential after "Bearer " and the secrets URLs carry (Text) in free
// text: log messages and values, span statuses, error messages. It is
// hand-written rather than a regexp so that it needs no package state,
// makes one pass per kind, and returns s itself (no allocation) when there
// is nothing to hide.
func Scrub(s string) string {
	return Text(redactCredentials(s))
}

// MayNeedScrub reports whether Scrub could change s: false lets a writer
// pass bytes through without converting them.
func MayNeedScrub[T string | []byte](s T) bool {
	return containsFold(s, "eyj") || containsFold(s, "bearer") || containsFold(s, "://")
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
			b.WriteString(Placeholder)
			i, last = end, end
			continue
		}
		if start, end := bearerCredential(s, i); end > start {
			b.WriteString(s[last:start])
			b.WriteString(Placeholder)
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

// Foreign makes text another party chose (a server's error_description, a
// client's name, a URL it sent) safe to quote in an error, a log line or a
// page: the characters RFC 6749 §5.2 allows in error and error_description
// (printable ASCII without " and \), cut to n bytes, trimmed.
func Foreign(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strings.TrimSpace(s)
}
