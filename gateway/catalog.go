package gateway

import (
	"sync"

	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
)

// catalog remembers each backend's tools as its last tools/list showed them,
// so a tools/call decision can see the tool's annotations (readOnlyHint).
// A tool the gateway has not seen listed reaches the policy without
// annotations, and so is treated as not read-only.
type catalog struct {
	mu    sync.RWMutex
	tools map[string]map[string]map[string]any
}

func newCatalog() *catalog {
	return &catalog{tools: map[string]map[string]map[string]any{}}
}

// remember merges one page of a tools/list result.
func (c *catalog) remember(backend string, items []mcp.ListItem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.tools[backend]
	if m == nil {
		m = map[string]map[string]any{}
		c.tools[backend] = m
	}
	for _, it := range items {
		m[it.Name] = it.Annotations
	}
}

// tool is the policy's view of one tool of backend.
func (c *catalog) tool(backend, name string) policy.Tool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return policy.Tool{Name: name, Annotations: c.tools[backend][name]}
}
