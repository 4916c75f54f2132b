//go:build !linux || !cgo

package curl

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ioloop-go/ioloop"
)

// Without cgo, or off Linux, the package compiles but cannot run: there is
// no libcurl and no C core. NewClient says so.

var errUnsupported = fmt.Errorf("curl: needs cgo, Linux and libcurl: %w", ioloop.ErrUnsupported)

// Client is an HTTP client on an ioloop loop; see the cgo build.
type Client struct{ loop *ioloop.IOLoop }

// NewClient returns an error wrapping ioloop.ErrUnsupported in this build.
func NewClient(l *ioloop.IOLoop, opts ...Option) (*Client, error) { return nil, errUnsupported }

// Loop returns the loop the client runs on.
func (c *Client) Loop() *ioloop.IOLoop { return c.loop }

// Fetch calls cb with an error wrapping ioloop.ErrUnsupported.
func (c *Client) Fetch(req *Request, cb func(*Response, error)) {
	c.FetchContext(context.Background(), req, cb)
}

// FetchContext calls cb with an error wrapping ioloop.ErrUnsupported.
func (c *Client) FetchContext(ctx context.Context, req *Request, cb func(*Response, error)) {
	if cb != nil {
		cb(nil, &Error{Err: errUnsupported})
	}
}

// Do returns an error wrapping ioloop.ErrUnsupported.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	return nil, &Error{Err: errUnsupported}
}

// Close does nothing.
func (c *Client) Close() error { return nil }

// String is the code's number (libcurl's text needs libcurl).
func (c Code) String() string { return "CURLcode " + strconv.Itoa(int(c)) }

// LibcurlVersion is empty in this build.
func LibcurlVersion() string { return "" }
