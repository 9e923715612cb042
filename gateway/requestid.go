package gateway

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

// maxRequestIDLen bounds an adopted X-Request-ID: a UUID is 36 characters,
// a W3C trace id 32, an AWS or GCP load balancer's id well under 64.
const maxRequestIDLen = 64

// assignRequestID gives every request an id for logs, audit records, error pages
// and the backend request. A client's X-Request-ID is adopted only when it
// is 1 to 64 characters of [A-Za-z0-9._:-]: the id is written into log
// lines, audit records and a header sent on, where quotes, spaces, control
// characters or kilobytes of text could forge log fields, break a log
// parser or bloat the audit trail. Anything else is replaced by a fresh
// UUID (the client sees which one in the answer's X-Request-ID).
func assignRequestID(c *fiber.Ctx) error {
	setRequestID(c)
	return c.Next()
}

// setRequestID gives c its id, answered in X-Request-ID. The error handler
// calls it too: Fiber runs no middleware for requests it refuses itself.
func setRequestID(c *fiber.Ctx) string {
	rid := c.Get(fiber.HeaderXRequestID)
	if validRequestID(rid) {
		// Fiber's strings point into fasthttp's request buffer, and the id
		// outlives the handler (stream writers, audit batches).
		rid = strings.Clone(rid)
	} else {
		rid = uuid.NewString()
	}
	c.Set(fiber.HeaderXRequestID, rid)
	c.Locals("requestid", rid)
	return rid
}

func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}
