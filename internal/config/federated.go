package config

import (
	"path"
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
}

// PathsCollide reports whether a and b are the same path or one lies below
// the other at a segment boundary ("/" lies above every path).
func PathsCollide(a, b string) bool {
	a, b = "/"+strings.Trim(a, "/"), "/"+strings.Trim(b, "/")
	below := func(x, y string) bool { return y == "/" || strings.HasPrefix(x, y+"/") }
	return a == b || below(a, b) || below(b, a)
}
