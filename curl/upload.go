//go:build linux && cgo

package curl

import (
	"errors"
	"io"
	"syscall"
)

// uploadChunk is how much of a BodyReader is read at a time.
const uploadChunk = 64 << 10

// upload streams a Request.BodyReader: a goroutine reads one chunk at a
// time and hands it to the loop; the loop copies it into the slot's C
// buffer once libcurl's read callback has used up the previous one, and
// resumes a paused upload. The loop never waits for the reader, and at
// most one chunk waits in Go and one in C.
type upload struct {
	// Set before the goroutine starts, then read-only.
	r    io.Reader
	buf  []byte
	ack  chan struct{} // the loop took the chunk: read the next one
	done chan struct{} // closed when the transfer ends

	// Loop goroutine only.
	have  bool   // chunk/err wait to be copied into C
	chunk []byte // a slice of buf
	err   error
	ended bool
}

func (c *Client) startUpload(t *transfer) {
	u := &upload{
		r:    t.req.BodyReader,
		buf:  make([]byte, uploadChunk),
		ack:  make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	t.up = u
	go c.pump(t, t.gen, u)
}

// pump is the reader goroutine. It touches only u's read-only fields.
func (c *Client) pump(t *transfer, gen uint64, u *upload) {
	for {
		n, err := u.r.Read(u.buf)
		if n == 0 && err == nil {
			continue
		}
		chunk := u.buf[:n]
		if c.loop.AddCallback(func() { c.uploadArrived(t, gen, chunk, err) }) != nil {
			return // the loop closed: the transfer fails there
		}
		if err != nil {
			return
		}
		select {
		case <-u.ack:
		case <-u.done:
			return
		}
	}
}

// uploadArrived: a chunk (and/or the reader's final error) reached the
// loop. Loop goroutine, outside libcurl.
func (c *Client) uploadArrived(t *transfer, gen uint64, chunk []byte, err error) {
	if t.gen != gen || t.state != stActive || t.up == nil {
		return // the transfer is over
	}
	u := t.up
	u.chunk, u.err, u.have = chunk, err, true
	s := c.slots[t.id]
	if !s.uploadEmpty() {
		return // libcurl's read callback takes it when it needs it (onRead)
	}
	c.feed(t)
	if s.paused() {
		if code := s.unpause(); code != CodeOK && t.cause == nil {
			t.cause = &Error{Code: code, Message: "curl_easy_pause: " + code.String()}
		}
	}
}

// onRead: libcurl's read callback used up its chunk (inside libcurl).
func (c *Client) onRead(id int32) {
	c.calls++
	t := c.owner[id]
	if t == nil || t.up == nil || !t.up.have {
		return
	}
	c.feed(t)
}

// feed copies the waiting chunk into C and lets the goroutine read on.
func (c *Client) feed(t *transfer) {
	u := t.up
	eof := errors.Is(u.err, io.EOF)
	fail := u.err != nil && !eof
	if fail {
		t.cause = u.err
	}
	if !c.slots[t.id].setUpload(u.chunk, eof, fail) {
		t.cause = syscall.ENOMEM
		c.slots[t.id].setUpload(nil, false, true)
	}
	u.have, u.chunk = false, nil
	if u.err == nil {
		select {
		case u.ack <- struct{}{}:
		default:
		}
	}
}

// finish ends the goroutine's wait, and closes the reader if it is an
// io.Closer (on another goroutine: a Close may block).
func (u *upload) finish() {
	if u.ended {
		return
	}
	u.ended = true
	close(u.done)
	if cl, ok := u.r.(io.Closer); ok {
		go cl.Close()
	}
}
