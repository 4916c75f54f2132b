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
