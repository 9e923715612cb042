package gateway

import (
	"strings"
)

// How a backend's names and URIs are shown on the federated endpoint, and
// read back: every rewrite the endpoint makes goes through these four
// functions, so a name shown is always one that routes back to the same
// backend and the same original, and anything that would not is left out.
//
// Names (tools, prompts): <backend>__<name>. URIs (resources, templates,
// resources/updated): mcpgw.<label>+<original URI>, where label is the
// backend's name in a URI scheme's alphabet (RFC 3986 §3.1: letters,
// digits, "+", "-", "."; compared case-insensitively): a client that
// parses the URI (Python's pydantic, a URL class) sees a valid scheme, and
// a URI template keeps its expressions where they were.

// federatedURIScheme begins the scheme of every rewritten URI.
const federatedURIScheme = "mcpgw."

// nameOut is backend's name as the federated endpoint shows it.
func (fc *fedCall) nameOut(backend, name string) string {
	return backend + federatedSeparator + name
}

// nameIn finds the backend of the session a shown name belongs to and the
// backend's own name: the longest backend name that, with the separator,
// begins it.
func (fc *fedCall) nameIn(shown string) (backend, name string, ok bool) {
	for b := range fc.sessions {
		if n, found := strings.CutPrefix(shown, b+federatedSeparator); found && n != "" && len(b) > len(backend) {
			backend, name, ok = b, n, true
		}
	}
	return backend, name, ok
}

// uriLabel is backend's name in a URI scheme's alphabet, or false when it
// has none: "_" has no place in a scheme, and a scheme is case-insensitive.
func uriLabel(backend string) (string, bool) {
	if backend == "" || strings.ContainsAny(backend, "_") {
		return "", false
	}
	return strings.ToLower(backend), true
}

// uriOut is backend's URI as the federated endpoint shows it, or false when
// it cannot be shown reversibly (the backend's name has no label, or the
// URI has no scheme to keep after the label).
func (fc *fedCall) uriOut(backend, uri string) (string, bool) {
	label, ok := uriLabel(backend)
	if !ok || !hasURIScheme(uri) {
		return "", false
	}
	return federatedURIScheme + label + "+" + uri, true
}

// uriIn reads a shown URI back: the session's backend whose label it
// carries, and the backend's own URI.
func (fc *fedCall) uriIn(shown string) (backend, uri string, ok bool) {
	rest, found := cutPrefixFold(shown, federatedURIScheme)
	if !found {
		return "", "", false
	}
	label, uri, found := strings.Cut(rest, "+")
	if !found || !hasURIScheme(uri) {
		return "", "", false
	}
	for b := range fc.sessions {
		if l, ok := uriLabel(b); ok && strings.EqualFold(l, label) {
			if backend != "" {
				return "", "", false // two backends with one label: never guessed
			}
			backend = b
		}
	}
	return backend, uri, backend != ""
}

// hasURIScheme says whether uri begins with a scheme and ":" (RFC 3986
// §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )).
func hasURIScheme(uri string) bool {
	scheme, _, found := strings.Cut(uri, ":")
	if !found || scheme == "" {
		return false
	}
	for i, r := range scheme {
		alpha := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !alpha && (i == 0 || !(r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return false
		}
	}
	return true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}
