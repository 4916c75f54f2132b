package minihttp

import (
	"bytes"
	"errors"
	"testing"
)

func TestServePipelinedAndSplit(t *testing.T) {
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	in := []byte(req + req + req[:10])
	out, n, err := Serve(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Repeat(Response, 2); !bytes.Equal(out, want) {
		t.Fatalf("out = %q, want two responses", out)
	}
	if n != 2*len(req) {
		t.Fatalf("consumed %d, want %d", n, 2*len(req))
	}
	out, n, err = Serve(out[:0], append(in[n:], req[10:]...))
	if err != nil || n != len(req) || !bytes.Equal(out, Response) {
		t.Fatalf("rest of split request: out %q, n %d, err %v", out, n, err)
	}
}

func TestServeHeadTooLarge(t *testing.T) {
	_, n, err := Serve(nil, bytes.Repeat([]byte("a"), MaxHead+1))
	if !errors.Is(err, ErrHeadTooLarge) || n != 0 {
		t.Fatalf("n %d, err %v; want 0, ErrHeadTooLarge", n, err)
	}
}

func TestConnFeedKeepsTheTailAcrossReads(t *testing.T) {
	var c Conn
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	// Two heads, the second split across three reads; the peers' buffers
	// are reused after each call, so Feed must copy what it keeps.
	read := []byte(req + req[:10])
	out, err := c.Feed(read)
	if err != nil || string(out) != string(Response) {
		t.Fatalf("first read: %q, %v", out, err)
	}
	copy(read, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX") // the loop reuses its buffer
	if out, err = c.Feed([]byte(req[10:20])); err != nil || len(out) != 0 {
		t.Fatalf("middle read: %q, %v", out, err)
	}
	if out, err = c.Feed([]byte(req[20:] + req)); err != nil || string(out) != string(Response)+string(Response) {
		t.Fatalf("last read: %q, %v", out, err)
	}
	if _, err = c.Feed(make([]byte, MaxHead+1)); err != ErrHeadTooLarge {
		t.Fatalf("oversized head: %v", err)
	}
}
