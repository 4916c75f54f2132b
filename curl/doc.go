// Package curl is an HTTP client on an ioloop loop: libcurl's multi-socket
// interface driven by the loop's C core, like Tornado's
// CurlAsyncHTTPClient on Tornado's IOLoop.
//
//	loop := ioloop.Instance()
//	client, err := curl.NewClient(loop)
//	...
//	client.Fetch(&curl.Request{URL: "http://127.0.0.1:8080/"}, func(r *curl.Response, err error) {
//		// on the loop goroutine
//	})
//
//	// From any other goroutine:
//	resp, err := client.Do(ctx, &curl.Request{URL: "https://example.com/", Timeout: 5 * time.Second})
//
// # How it runs
//
// The client plugs libcurl into the loop through the loop's C API
// (IOLoop.CAPI): libcurl's socket callback watches and unwatches fds on the
// C core, its timer callback drives one C timer. When a socket is ready,
// the core calls the client's C code, which calls
// curl_multi_socket_action and curl_multi_info_read without entering Go;
// completed transfers reach Go once per such call, all together. Per fd
// event there is no cgo crossing at all, unless a request has an OnHeader
// or OnBody callback (then each header line or body chunk is one). Easy
// handles are reused across requests (their connections stay in libcurl's
// cache), and a response body is gathered in C and copied into Go memory
// once, when the transfer completes.
//
// Every libcurl call happens on the loop's thread: Fetch from another
// goroutine hands the transfer over with AddCallback, and nothing calls the
// multi handle from inside one of libcurl's callbacks (a Fetch or Close
// made in OnHeader or OnBody takes effect in the next loop iteration).
//
// # Outcomes
//
// Every Fetch gets exactly one callback: a *Response for any HTTP status
// (a 404 is not an error), or an *Error carrying libcurl's CURLcode and
// message. Timeouts match os.ErrDeadlineExceeded, cancellations the
// context's error, Close ErrClientClosed, the loop's Close
// ioloop.ErrClosed.
//
// libcurl must be installed to build this package: Debian's
// libcurl4-openssl-dev and pkg-config.
package curl
