package gateway

// compatAdminPrefix is where the Okta MCP adapter served its admin API.
const compatAdminPrefix = "/api/admin"
