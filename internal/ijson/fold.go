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
	// Member names are nearly always ASCII and mostly lower case: those
	// fold to themselves or byte by byte, without a rune loop, and the
	// former without allocating (Fold runs on every member of every
	// message and listed item).
	ascii, upper := true, false
	for i := 0; i < len(name); i++ {
		c := name[i]
		ascii = ascii && c < utf8.RuneSelf
		upper = upper || ('A' <= c && c <= 'Z')
	}
	if ascii {
		if !upper {
			return name
		}
		if f, ok := knownFolds[name]; ok {
			return f
		}
		b := []byte(name)
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// knownFolds are the folds of the camel-case member names MCP messages
// and JSON Schemas repeat in every listed item, computed once: folding
// each again allocated a string, a quarter of the allocations of reading
// a large list. Names not here are folded as before.
var knownFolds = func() map[string]string {
	names := []string{
		"inputSchema", "outputSchema", "readOnlyHint", "destructiveHint", "idempotentHint",
		"openWorldHint", "uriTemplate", "mimeType", "nextCursor", "additionalProperties",
		"minLength", "maxLength", "minItems", "maxItems", "uniqueItems",
		"exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minProperties", "maxProperties",
		"patternProperties", "propertyNames", "unevaluatedProperties", "prefixItems", "oneOf",
		"anyOf", "allOf", "readOnly", "writeOnly", "contentMediaType", "contentEncoding",
		"lastModified", "listChanged", "structuredContent", "isError",
		"protocolVersion", "serverInfo", "clientInfo", "websiteUrl", "sizeInBytes",
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		b := []byte(n)
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		m[n] = string(b)
	}
	return m
}()

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
	p, a, b, found := v.collisionBelow()
	if !found {
		return "", "", "", false
	}
	return orRoot(p), a, b, true
}

// OwnFoldCollision is FoldCollision for v's own members only, not nested ones.
func (v Value) OwnFoldCollision() (a, b string, found bool) {
	if v.Kind != Object || len(v.Members) < 2 {
		return "", "", false
	}
	if len(v.Members) <= smallObject {
		// Comparing pairs beats building a map for the few members most
		// objects have.
		var folded [smallObject]string
		for i, m := range v.Members {
			folded[i] = Fold(m.Name)
			for j := range i {
				if folded[j] == folded[i] {
					return v.Members[j].Name, m.Name, true
				}
			}
		}
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

// smallObject is the most members OwnFoldCollision compares pairwise.
const smallObject = 8

// collisionBelow finds a collision at or below v, with the JSON Pointer to
// its object relative to v ("" for v itself). The pointer is built on the
// way back up, only when there is a collision: building it on the way down
// cost a string per member of every message.
func (v Value) collisionBelow() (string, string, string, bool) {
	switch v.Kind {
	case Object:
		if a, b, found := v.OwnFoldCollision(); found {
			return "", a, b, true
		}
		for _, m := range v.Members {
			if p, a, b, ok := m.Value.collisionBelow(); ok {
				return "/" + escapePointer(m.Name) + p, a, b, true
			}
		}
	case Array:
		for i, it := range v.Items {
			if p, a, b, ok := it.collisionBelow(); ok {
				return fmt.Sprintf("/%d%s", i, p), a, b, true
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
