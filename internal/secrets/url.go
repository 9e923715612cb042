package secrets

import (
	"net/url"
	"strings"
)

// URL returns raw with its userinfo (user and password alike), every query
// value and its fragment replaced by Mark; the scheme, host, path and query
// parameter names stay. Which query parameters are secret cannot be known
// from their names, so every value is hidden; the names are enough to tell
// two URLs apart in a log. Paths are kept: they are what an operator needs
// to see, and a secret in a path is the one form this rule does not catch.
// A URL that does not parse and holds an "@" (which could be userinfo this
// rule failed to find) is replaced whole: it fails closed. Text that holds
// no "scheme://" is returned unchanged.
func URL(raw string) string {
	k := strings.Index(raw, "://")
	if k <= 0 || schemeStart(raw[:k]) != 0 {
		return raw
	}
	red, _ := redactSpan(raw)
	if strings.Contains(red, "@") {
		if _, err := url.Parse(raw); err != nil {
			return Placeholder
		}
	}
	return red
}

// Text returns s with every URL in it ("scheme://…", up to whitespace, a
// quote, a backslash or an angle bracket) redacted as URL does. It returns
// s itself, without allocating, when there is nothing to hide. Go's
// *url.Error prints its URL quoted (Post "http://…": …), so a URL in an
// error message ends at the quote.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	last := 0 // s[last:] is still to copy
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], "://")
		if k < 0 {
			break
		}
		sep := i + k
		start := schemeStart(s[:sep])
		end := urlEnd(s, sep+3)
		if start < 0 {
			i = sep + 3
			continue
		}
		if red, changed := redactSpan(s[start:end]); changed {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:start])
			b.WriteString(red)
			last = end
		}
		i = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// Error returns err with its message redacted by Text (nil for nil). The
// result unwraps to err, so errors.Is and errors.As still see the cause;
// only the text changes.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := Text(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// schemeStart returns where the URL scheme that ends s begins (RFC 3986:
// ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )), or -1 when s does not end
// in one.
func schemeStart(s string) int {
	j := len(s)
	for j > 0 && isSchemeChar(s[j-1]) {
		j--
	}
	// The scheme's first character must be a letter: skip leading digits
	// and signs ("1http://" starts at "http").
	for j < len(s) && !isAlpha(s[j]) {
		j++
	}
	if j == len(s) {
		return -1
	}
	return j
}

// urlEnd returns where the URL that has its "://" before i ends: at the
// first byte no printed URL contains.
func urlEnd(s string, i int) int {
	for i < len(s) {
		switch c := s[i]; {
		case c <= ' ' || c == 0x7f, c == '"', c == '\'', c == '`', c == '\\', c == '<', c == '>':
			return i
		}
		i++
	}
	return i
}

// redactSpan redacts one URL ("scheme://authority/path?query#fragment").
// changed is false when nothing in it needed hiding.
func redactSpan(u string) (string, bool) {
	sep := strings.Index(u, "://")
	head, rest := u[:sep+3], u[sep+3:]
	// The authority ends at the first "/", "?" or "#" (RFC 3986 §3.2), so
	// the userinfo is what comes before its last "@".
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	authority, tail := rest[:authEnd], rest[authEnd:]
	changed := false
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		authority = Mark + authority[at:]
		changed = true
	}
	path, query, fragment := tail, "", ""
	hasQuery, hasFragment := false, false
	if h := strings.IndexByte(path, '#'); h >= 0 {
		path, fragment, hasFragment = path[:h], path[h+1:], true
	}
	if q := strings.IndexByte(path, '?'); q >= 0 {
		path, query, hasQuery = path[:q], path[q+1:], true
	}
	if hasQuery {
		if red, ok := redactQuery(query); ok {
			query, changed = red, true
		}
	}
	if hasFragment && fragment != "" {
		fragment, changed = Mark, true
	}
	if !changed {
		return u, false
	}
	var b strings.Builder
	b.Grow(len(u) + 16)
	b.WriteString(head)
	b.WriteString(authority)
	b.WriteString(path)
	if hasQuery {
		b.WriteByte('?')
		b.WriteString(query)
	}
	if hasFragment {
		b.WriteByte('#')
		b.WriteString(fragment)
	}
	return b.String(), true
}

// redactQuery keeps each parameter's name and hides its value; a parameter
// without "=" is all value (?SECRET), so it is hidden whole. Empty values
// stay empty: they hide nothing.
func redactQuery(q string) (string, bool) {
	if q == "" {
		return q, false
	}
	parts := strings.Split(q, "&")
	changed := false
	for i, p := range parts {
		name, value, hasValue := strings.Cut(p, "=")
		switch {
		case !hasValue && p != "":
			parts[i], changed = Mark, true
		case hasValue && value != "":
			parts[i], changed = name+"="+Mark, true
		}
	}
	if !changed {
		return q, false
	}
	return strings.Join(parts, "&"), true
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isSchemeChar(c byte) bool {
	return isAlpha(c) || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}
