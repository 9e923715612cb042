package config

// BackendNames returns the names of all backends, sorted.
func (c *Config) BackendNames() []string { return sortedKeys(c.Backends) }

// AgentNames returns the names (map keys) of all agents, sorted.
func (c *Config) AgentNames() []string { return sortedKeys(c.Agents) }

// Backend returns the backend named name (its map key).
func (c *Config) Backend(name string) (Backend, bool) {
	b, ok := c.Backends[name]
	return b, ok
}

// AgentByID returns the agent whose ID (agent_id, else its map key) is id,
// the value clients send in X-Agent-ID. Validate guarantees IDs are unique;
// on an unvalidated Config the first match in name order wins.
func (c *Config) AgentByID(id string) (Agent, bool) {
	if id == "" {
		return Agent{}, false
	}
	for _, name := range sortedKeys(c.Agents) {
		a := c.Agents[name]
		if a.Name == "" {
			a.Name = name
		}
		if a.ID() == id {
			return a, true
		}
	}
	return Agent{}, false
}
