package policy

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Catalog is a backend's list of tools, resources or prompts prepared once
// for many visibility queries (VisibleCatalog): its policy form is built and
// its content digested when it is made, so a query pays for neither. A
// Catalog never changes; when the backend's list changes, make a new one.
type Catalog struct {
	kind   ListKind
	items  *ast.Array
	digest [sha256.Size]byte
	size   int
}

// ToolCatalog prepares a list of tools (names and annotations).
func ToolCatalog(tools []Tool) (*Catalog, error) {
	list, err := toolList(tools)
	if err != nil {
		return nil, err
	}
	return newCatalog(ListTools, list, tools)
}

// ResourceCatalog prepares a list of resources (or resource templates).
func ResourceCatalog(resources []Resource) (*Catalog, error) {
	return newCatalog(ListResources, resourceList(resources), resources)
}

// PromptCatalog prepares a list of prompts.
func PromptCatalog(prompts []Prompt) (*Catalog, error) {
	list, err := promptList(prompts)
	if err != nil {
		return nil, err
	}
	return newCatalog(ListPrompts, list, prompts)
}

func newCatalog(kind ListKind, list []any, source any) (*Catalog, error) {
	// encoding/json writes map keys in order, so equal lists digest equally.
	canonical, err := json.Marshal(source)
	if err != nil {
		return nil, fmt.Errorf("%s catalog: %w", kind, err)
	}
	// Built strictly, not lazily: the value is shared by concurrent
	// evaluations and a lazy object fills its cache on read.
	v, err := ast.InterfaceToValue(list)
	if err != nil {
		return nil, fmt.Errorf("%s catalog: %w", kind, err)
	}
	items, ok := v.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("%s catalog: %s, not an array", kind, ast.ValueName(v))
	}
	return &Catalog{kind: kind, items: items, digest: sha256.Sum256(canonical), size: len(list)}, nil
}

// Kind is what the catalog lists.
func (c *Catalog) Kind() ListKind { return c.kind }

// Len is the number of items in the catalog.
func (c *Catalog) Len() int { return c.size }
