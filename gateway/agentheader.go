package gateway

import (
	"fmt"

	"github.com/gofiber/fiber/v2"
)

// The agent a request names: X-Agent-ID is mcpgw's header, X-MCP-Agent the
// Okta MCP adapter's name for the same value, so the adapter's clients work
// unchanged.
const (
	headerAgentID  = "X-Agent-ID"
	headerMCPAgent = "X-MCP-Agent"
)

// agentHeader returns the agent id the request names and the header it
// came from ("" when neither is sent). Both headers may be sent only when
// they agree, and each only once: a request naming two agents would be
// decided as one while a proxy or log in front of the gateway saw the
// other.
func agentHeader(c *fiber.Ctx) (id, header string, err error) {
	for _, name := range []string{headerAgentID, headerMCPAgent} {
		for _, v := range c.Request().Header.PeekAll(name) {
			switch value := string(v); {
			case header == "":
				id, header = value, name
			case value != id:
				if header == name {
					return "", "", fmt.Errorf("%s is sent twice with different agents; send it once", name)
				}
				return "", "", fmt.Errorf("%s and %s name different agents (%q and %q); send one of them", header, name, id, value)
			}
		}
	}
	return id, header, nil
}
