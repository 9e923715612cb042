// Package integrity pins what a backend lists: the definition of each tool,
// prompt and resource template is reduced to the fields an agent's model
// reads, hashed over one canonical encoding, and compared with the
// definition an administrator approved. It is pure computation; the store
// keeps the pins and the gateway decides what to do with a classification.
package integrity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/mcpgw/mcpgw/internal/ijson"
)

// Kind is the kind of a pinned item.
type Kind string

const (
	KindTool             Kind = "tool"
	KindPrompt           Kind = "prompt"
	KindResourceTemplate Kind = "resource_template"
)

// Kinds lists every kind, for validation and messages.
var Kinds = []Kind{KindTool, KindPrompt, KindResourceTemplate}

// fields are the members of an item that make its definition, by kind: what
// a model reads when it picks and calls the item. Anything else a backend
// sends (_meta, icons) is not pinned, so it may change without review.
var fields = map[Kind][]string{
	KindTool:             {"name", "title", "description", "inputSchema", "outputSchema", "annotations"},
	KindPrompt:           {"name", "title", "description", "arguments"},
	KindResourceTemplate: {"uriTemplate", "name", "title", "description", "mimeType", "annotations"},
}

// Fields lists the definition fields of kind, in their canonical order.
func Fields(kind Kind) []string { return slices.Clone(fields[kind]) }

// Definition is one item's definition as a backend listed it.
type Definition struct {
	Kind Kind
	// Name identifies the item within its kind: the name of a tool or
	// prompt, the uriTemplate of a resource template.
	Name string
	// Hash is the hex SHA-256 of Body.
	Hash string
	// Body is the canonical encoding of the definition: an object of the
	// fields present, each value with its members sorted (ijson
	// AppendSorted), so every replica computes the same Hash and a backend
	// that merely reorders a schema's properties changes nothing.
	Body []byte
}

// FromItem builds the definition of one listed item. The item's members are
// matched by folded name, as the gateway reads list items (mcp.FindLists
// refuses items whose names collide when folded), and written under the
// field's canonical name.
func FromItem(kind Kind, item ijson.Value) (Definition, error) {
	names, ok := fields[kind]
	if !ok {
		return Definition{}, fmt.Errorf("integrity: unknown kind %q", kind)
	}
	if item.Kind != ijson.Object {
		return Definition{}, fmt.Errorf("integrity: %s is %s, not an object", kind, item.Kind)
	}
	def := Definition{Kind: kind}
	body := []byte{'{'}
	for _, f := range names {
		v, ok := item.GetFolded(f)
		if !ok {
			continue
		}
		if len(body) > 1 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, "%q:", f)
		body = v.AppendSorted(body)
		if f == nameField(kind) && v.Kind == ijson.String {
			def.Name = v.Str
		}
	}
	def.Body = append(body, '}')
	if def.Name == "" {
		return Definition{}, fmt.Errorf("integrity: %s without a %s", kind, nameField(kind))
	}
	sum := sha256.Sum256(def.Body)
	def.Hash = hex.EncodeToString(sum[:])
	return def, nil
}

// nameField is the member that names an item of kind.
func nameField(kind Kind) string {
	if kind == KindResourceTemplate {
		return "uriTemplate"
	}
	return "name"
}

// Changed names the fields in which two definition bodies (as FromItem
// makes them) differ, in canonical order: a field present in one only
// counts as changed. Bodies that cannot be read differ in every field.
func Changed(kind Kind, approved, current []byte) []string {
	a, errA := ijson.Parse(approved)
	c, errC := ijson.Parse(current)
	if errA != nil || errC != nil {
		return Fields(kind)
	}
	var out []string
	for _, f := range fields[kind] {
		av, aok := a.Get(f)
		cv, cok := c.Get(f)
		if aok != cok || (aok && string(av.AppendSorted(nil)) != string(cv.AppendSorted(nil))) {
			out = append(out, f)
		}
	}
	return out
}
