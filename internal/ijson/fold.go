package ijson

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Fold maps a member name to the key Go's encoding/json matches it by:
// names equal under Unicode simple case folding (bytes.EqualFold, so "ſ"
// matches "s" and the Kelvin sign "k") fold to the same string. Go MCP
// servers bind struct fields this way, so two names with one fold are two
// readings of one field.
func Fold(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune is the smallest rune of r's simple-folding orbit: one
// representative per orbit, whichever member was written.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		// ASCII letters fold to one lower-case representative below; the
		// orbit of 's' and 'k' reaches outside ASCII, whose minimum is the
		// ASCII upper-case letter, so map to lower case consistently.
		return r
	}
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < min {
			min = f
		}
	}
	if 'A' <= min && min <= 'Z' {
		min += 'a' - 'A'
	}
	return min
}

// FoldCollision finds the first object, at any depth of v, with two member
// names that differ but fold to the same key. path names the object (a
// JSON Pointer).
func (v Value) FoldCollision() (path, a, b string, found bool) {
	return v.foldCollision("")
}

// OwnFoldCollision is FoldCollision for v's own members only, not nested ones.
func (v Value) OwnFoldCollision() (a, b string, found bool) {
	if v.Kind != Object || len(v.Members) < 2 {
		return "", "", false
	}
	seen := make(map[string]string, len(v.Members))
	for _, m := range v.Members {
		k := Fold(m.Name)
		if prev, dup := seen[k]; dup {
			return prev, m.Name, true
		}
		seen[k] = m.Name
	}
	return "", "", false
}

func (v Value) foldCollision(path string) (string, string, string, bool) {
	switch v.Kind {
	case Object:
		if a, b, found := v.OwnFoldCollision(); found {
			return orRoot(path), a, b, true
		}
		for _, m := range v.Members {
			if p, a, b, ok := m.Value.foldCollision(path + "/" + escapePointer(m.Name)); ok {
				return p, a, b, true
			}
		}
	case Array:
		for i, it := range v.Items {
			if p, a, b, ok := it.foldCollision(fmt.Sprintf("%s/%d", path, i)); ok {
				return p, a, b, true
			}
		}
	}
	return "", "", "", false
}

func orRoot(path string) string {
	if path == "" {
		return "/"
	}
	return path
}

// escapePointer escapes a name for a JSON Pointer (RFC 6901).
func escapePointer(name string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}
