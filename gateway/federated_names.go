package gateway

import (
	"strings"
)

// How a backend's names and URIs are shown on the federated endpoint, and
// read back: every rewrite the endpoint makes goes through these four
// functions, so a name shown is always one that routes back to the same
// backend and the same original, and anything that would not is left out
// (nameOut and uriOut check the round trip themselves).
//
// Names (tools, prompts): the backend's federated prefix (config
// backends.<name>.federated_prefix, default <backend>__) and the name. One
// backend may be unprefixed: its names are shown as they are, except those
// that begin another backend's prefix. URIs (resources, templates,
// resources/updated): mcpgw.<label>+<original URI>, where label is the
// backend's name in a URI scheme's alphabet (RFC 3986 §3.1: letters,
// digits, "+", "-", "."; compared case-insensitively): a client that
// parses the URI (Python's pydantic, a URL class) sees a valid scheme, and
// a URI template keeps its expressions where they were. The unprefixed
// backend's URIs are shown as they are, except those in mcpgw.* schemes.

// federatedURIScheme begins the scheme of every rewritten URI.
const federatedURIScheme = "mcpgw."

// prefix is what begins backend's names here: its configured prefix when
// the request read the topology (federatedPrefixes), else the default.
func (fc *fedCall) prefix(backend string) string {
	if p, ok := fc.prefixes[backend]; ok {
		return p
	}
	return backend + federatedSeparator
}

// nameOut is backend's name as the federated endpoint shows it, or false
// when the shown name would not route back to it (an unprefixed backend's
// name that begins another backend's prefix).
func (fc *fedCall) nameOut(backend, name string) (string, bool) {
	shown := fc.prefix(backend) + name
	b, n, ok := fc.nameIn(shown)
	return shown, ok && b == backend && n == name
}

// nameIn finds the backend of the session a shown name belongs to and the
// backend's own name: the one backend whose non-empty prefix begins it,
// else the unprefixed backend. Two prefixes that both begin it (config
// validation refuses them) route nowhere: never guessed.
func (fc *fedCall) nameIn(shown string) (backend, name string, ok bool) {
	var unprefixed string
	matches := 0
	for b := range fc.sessions {
		p := fc.prefix(b)
		if p == "" {
			unprefixed = b
			continue
		}
		if n, found := strings.CutPrefix(shown, p); found && n != "" {
			backend, name = b, n
			matches++
		}
	}
	switch {
	case matches == 1:
		return backend, name, true
	case matches == 0 && unprefixed != "" && shown != "":
		return unprefixed, shown, true
	}
	return "", "", false
}

// unprefixed is the session's backend shown without a prefix, or "".
func (fc *fedCall) unprefixed() string {
	for b := range fc.sessions {
		if fc.prefix(b) == "" {
			return b
		}
	}
	return ""
}

// uriLabel is backend's name in a URI scheme's alphabet: lower case (a
// scheme is case-insensitive) with "_" as "-" ("_" has no place in a
// scheme). Two backends of one label ("a_b", "A-b") are never told apart by
// guessing: uriIn refuses the label, and uriOut, which checks its round
// trip, leaves their resources out.
func uriLabel(backend string) (string, bool) {
	if backend == "" {
		return "", false
	}
	return strings.ToLower(strings.ReplaceAll(backend, "_", "-")), true
}

// uriOut is backend's URI as the federated endpoint shows it, or false when
// it cannot be shown reversibly (the backend's name has no label, the URI
// has no scheme to keep after the label, or an unprefixed backend's URI is
// in an mcpgw.* scheme).
func (fc *fedCall) uriOut(backend, uri string) (string, bool) {
	shown := uri
	if fc.prefix(backend) != "" {
		label, ok := uriLabel(backend)
		if !ok || !hasURIScheme(uri) {
			return "", false
		}
		shown = federatedURIScheme + label + "+" + uri
	}
	b, u, ok := fc.uriIn(shown)
	return shown, ok && b == backend && u == uri
}

// uriIn reads a shown URI back: the session's backend whose label it
// carries and the backend's own URI, or, for a URI in no mcpgw.* scheme,
// the unprefixed backend and the URI as it is.
func (fc *fedCall) uriIn(shown string) (backend, uri string, ok bool) {
	rest, found := cutPrefixFold(shown, federatedURIScheme)
	if !found {
		b := fc.unprefixed()
		return b, shown, b != "" && shown != ""
	}
	label, uri, found := strings.Cut(rest, "+")
	if !found || !hasURIScheme(uri) {
		return "", "", false
	}
	for b := range fc.sessions {
		if fc.prefix(b) == "" {
			continue // its URIs are shown unchanged, never labelled
		}
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
