package curl

// DefaultMaxClients is the number of transfers a Client runs at once
// unless WithMaxClients says otherwise; the others wait in FIFO order.
const DefaultMaxClients = 64

// Option configures a Client.
type Option func(*options)

type options struct {
	maxClients int
}

// WithMaxClients caps the transfers that run at once (Tornado's
// max_clients). Fetches beyond it wait in a FIFO queue, and a request's
// Timeout counts that wait. n must be at least 1. libcurl keeps up to n
// idle connections for reuse.
func WithMaxClients(n int) Option { return func(o *options) { o.maxClients = n } }
