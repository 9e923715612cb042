package config

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// validateFederated checks server.federated_path: a clean absolute path,
// not "/", and no backend routed at it, below it or above it (the
// federated route would shadow the backend's path, or the other way
// round). The gateway checks it again against its own routes and against
// every routing table it builds, since the admin API adds backends later.
func (c *Config) validateFederated(v *validator) {
	p := c.Server.FederatedPath
	if p == "" {
		return
	}
	if !strings.HasPrefix(p, "/") || p == "/" || strings.ContainsAny(p, "?# \t\r\n") || path.Clean(p) != p {
		v.addf("server.federated_path", `must be a clean URL path such as "/mcp" (not "/", no //, . or .. segments, query or spaces)`)
		return
	}
	for _, name := range sortedKeys(c.Backends) {
		for _, bp := range c.Backends[name].Paths {
			if PathsCollide(p, bp) {
				v.addf("server.federated_path", "%q collides with backends.%s's path %q", p, name, bp)
			}
		}
	}
	v.errs = append(v.errs, FederatedPrefixProblems(c.Backends)...)
}

// federatedPrefixChars is a tool name's alphabet (the MCP specification's
// A-Z, a-z, 0-9, "_", "-", "."), so a prefixed name is still a valid name.
var federatedPrefixChars = regexp.MustCompile(`^[A-Za-z0-9_.-]{0,64}$`)

// FederatedPrefixProblems says why the backends' federated name prefixes
// (backends.<name>.federated_prefix, default "<name>__") would not route
// every shown name back to one backend: a prefix outside a tool name's
// alphabet, two backends unprefixed, or one non-empty prefix beginning
// another (a name would then begin both, and the gateway never guesses).
// Checked when server.federated_path is set, at load and for every
// routing table the gateway builds (admin writes add backends later).
func FederatedPrefixProblems(backends map[string]Backend) []error {
	var out []error
	var unprefixed string
	var seen [][2]string // non-empty prefix, backend: in name order
	for _, name := range sortedKeys(backends) {
		b := backends[name]
		b.Name = name
		prefix := b.FederatedNamePrefix()
		key := "backends." + name + ".federated_prefix"
		switch {
		case !federatedPrefixChars.MatchString(prefix):
			out = append(out, fmt.Errorf("%s: %q: want at most 64 letters, digits, '_', '-' or '.'", key, prefix))
		case prefix == "" && unprefixed != "":
			out = append(out, fmt.Errorf("%s: \"\" (unprefixed) is already backends.%s's: at most one backend may be unprefixed", key, unprefixed))
		case prefix == "":
			unprefixed = name
		default:
			for _, o := range seen {
				other, otherName := o[0], o[1]
				if strings.HasPrefix(prefix, other) || strings.HasPrefix(other, prefix) {
					out = append(out, fmt.Errorf("%s: %q and backends.%s's prefix %q begin one another, so a name would route to both (set federated_prefix on one; the default is \"<name>__\")", key, prefix, otherName, other))
				}
			}
			seen = append(seen, [2]string{prefix, name})
		}
	}
	return out
}

// PathsCollide reports whether a and b are the same path or one lies below
// the other at a segment boundary ("/" lies above every path).
func PathsCollide(a, b string) bool {
	a, b = "/"+strings.Trim(a, "/"), "/"+strings.Trim(b, "/")
	below := func(x, y string) bool { return y == "/" || strings.HasPrefix(x, y+"/") }
	return a == b || below(a, b) || below(b, a)
}
