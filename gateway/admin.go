package gateway

import "log/slog"

// mountAdmin mounts /admin/v1 (agents, backends, audit), authorized by
// data.mcp.admin.allow.
func (s *Server) mountAdmin(log *slog.Logger) {}
