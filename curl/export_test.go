//go:build linux && cgo

package curl

// Internals the tests look at; loop goroutine only (see rig.on).

// recursiveCalls counts libcurl multi calls that returned
// CURLM_RECURSIVE_API_CALL (must stay 0).
func (c *Client) recursiveCalls() int64 {
	if c.torn {
		return c.recur
	}
	return c.k.recursive()
}

// cWatches is the number of fds the client watches on the loop now.
func (c *Client) cWatches() int64 {
	if c.torn {
		return 0
	}
	return c.k.watches()
}

func (c *Client) goCalls() int64   { return c.calls }
func (c *Client) activeCount() int { return c.active }
func (c *Client) queuedCount() int { return c.queued() }
func (c *Client) slotCount() int   { return len(c.slots) }
