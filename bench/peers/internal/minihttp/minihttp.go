// Package minihttp is the few lines of HTTP/1.1 the Go peers of the suite
// share, so that gonet, gnet, evio and nbio differ only in their event loops
// and send the same bytes as the C peers.
//
// It answers every complete request head with one fixed response and handles
// pipelining. It reads no request bodies: it is a benchmark responder for the
// suite's GET requests, not an HTTP server.
package minihttp

import (
	"bytes"
	"errors"
)

// Response is the answer to every request, byte for byte the one of the C
// peers (bench/peers/cshared/peer.h).
var Response = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!")

// MaxHead bounds a request head that has not ended yet, like the 431 limit of
// examples/hello.
const MaxHead = 8192

// ErrHeadTooLarge reports an unterminated request head over MaxHead; the
// caller closes the connection.
var ErrHeadTooLarge = errors.New("minihttp: request head over 8 KiB")

var endOfHead = []byte("\r\n\r\n")

// Serve appends one Response to out for each complete request head in in and
// returns the grown out and how many bytes of in it consumed; the caller keeps
// in[consumed:] for the next read.
func Serve(out, in []byte) ([]byte, int, error) {
	done := 0
	for {
		i := bytes.Index(in[done:], endOfHead)
		if i < 0 {
			break
		}
		done += i + len(endOfHead)
		out = append(out, Response...)
	}
	if len(in)-done > MaxHead {
		return out, done, ErrHeadTooLarge
	}
	return out, done, nil
}

// Conn is the per-connection state of a peer whose event loop hands over
// each read in a buffer it reuses (evio, nbio): the unparsed tail of the
// input and the response buffer, both kept between reads.
type Conn struct{ in, out []byte }

// Feed serves the complete request heads of what was buffered plus data,
// keeps the unterminated tail, and returns the responses to send (valid
// until the next Feed); an error means the caller closes the connection.
func (c *Conn) Feed(data []byte) ([]byte, error) {
	buf := data
	if len(c.in) > 0 {
		c.in = append(c.in, data...)
		buf = c.in
	}
	out, used, err := Serve(c.out[:0], buf)
	c.out = out
	c.in = append(c.in[:0], buf[used:]...)
	return out, err
}
