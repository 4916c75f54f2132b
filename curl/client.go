//go:build linux && cgo

package curl

import (
	"context"
	"errors"
	"fmt"
	"runtime/cgo"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ioloop-go/ioloop"
)

// Client is an HTTP client on an ioloop loop: libcurl's multi-socket
// interface driven by the loop's C core (see the package doc). Its methods
// are safe from any goroutine.
type Client struct {
	loop   *ioloop.IOLoop
	max    int
	handle cgo.Handle // how C finds this Client; deleted by teardown
	unhook func()     // cancels the loop's OnClose hook

	closing atomic.Bool // Close was called (read on the loop's hot path)

	mu      sync.Mutex // guards the fields down to kicked
	closed  bool       // Close was called
	loopErr error      // the loop closed: what its transfers fail with
	gone    bool       // torn down: Fetch fails without queuing
	inbox   []*transfer
	ready   []finished // outcomes to deliver in the next loop turn
	kicked  bool       // kick is queued on the loop
	spareIn []*transfer
	spareRd []finished

	kick     func() // onKick, made once so that queuing it allocates nothing
	tearDown func() // teardown, likewise

	// Loop goroutine only (and the goroutine of the loop's OnClose hook,
	// once the loop has stopped).
	k       core
	multiOK bool
	torn    bool         // teardown ran: the C state is gone
	depth   int          // > 0 while Go runs inside a libcurl callback
	slots   []slot       // by slot id
	owner   []*transfer  // the transfer using each slot, nil when free
	free    []int32      // free slot ids
	active  int          // transfers in libcurl
	queue   []queueEntry // FIFO of transfers waiting for a slot, from qhead
	qhead   int
	qstale  int        // entries from qhead on whose transfer left the queue (cancelled)
	doneIDs []int32    // reused by onDone
	batch   []finished // reused by onDone
	calls   int64      // calls from C into Go (for the tests: none per fd event)
	recur   int64      // CURLM_RECURSIVE_API_CALLs seen, kept past teardown (tests: 0)
}

type queueEntry struct {
	t   *transfer
	gen uint64
}

type finished struct {
	t    *transfer
	resp *Response
	err  error
}

type tstate uint8

const (
	stNew     tstate = iota
	stInbox          // fetched off the loop; in c.inbox
	stQueued         // in c.queue, waiting for a slot
	stActive         // in libcurl, owner of slot id
	stDone           // completed; its callback is about to run
	stRecycle        // back in the pool
)

// transfer is one Fetch, from the call until its callback. Loop goroutine
// only, except the fields set before it is published to the loop.
type transfer struct {
	c        *Client
	gen      uint64 // bumped on recycling: stale references compare it
	req      *Request
	cb       func(*Response, error)
	state    tstate
	id       int32 // slot id while active
	fresh    bool  // fetched on the loop and started at once: Timeout is whole
	deadline time.Time
	queuedAt time.Time // set when it had to wait for a slot
	queued   time.Duration
	qtimer   *ioloop.Timeout
	stopCtx  func() bool
	cause    error // a callback's or the body reader's error that aborted it
	up       *upload
}

var transferPool = sync.Pool{New: func() any { return new(transfer) }}

// NewClient makes a client whose transfers run on l. libcurl itself is
// set up on the loop, at the first transfer. When l is closed, every
// transfer still pending fails (see Close) and the client releases
// everything it holds in C.
func NewClient(l *ioloop.IOLoop, opts ...Option) (*Client, error) {
	if l == nil {
		return nil, fmt.Errorf("curl: NewClient: nil loop: %w", syscall.EINVAL)
	}
	o := options{maxClients: DefaultMaxClients}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.maxClients < 1 {
		return nil, fmt.Errorf("curl: NewClient: WithMaxClients(%d): need at least 1: %w", o.maxClients, syscall.EINVAL)
	}
	if code := curlInit(); code != CodeOK {
		return nil, &Error{Code: code, Message: "curl_global_init: " + code.String()}
	}
	api, err := l.CAPI()
	if err != nil {
		return nil, fmt.Errorf("curl: NewClient: %w", err)
	}
	if err := checkAPI(api); err != nil {
		return nil, err
	}
	c := &Client{loop: l, max: o.maxClients}
	c.kick = c.onKick
	c.tearDown = c.teardown
	c.handle = cgo.NewHandle(c)
	k, ok := newCore(api, c.handle)
	if !ok {
		c.handle.Delete()
		return nil, fmt.Errorf("curl: NewClient: %w", syscall.ENOMEM)
	}
	c.k = k
	unhook, err := l.OnClose(c.onLoopClose)
	if err != nil {
		k.free() // nothing of it touched the loop yet
		c.handle.Delete()
		return nil, fmt.Errorf("curl: NewClient: %w", err)
	}
	c.unhook = unhook
	return c, nil
}

// Loop returns the loop the client runs on.
func (c *Client) Loop() *ioloop.IOLoop { return c.loop }

// Fetch starts req and calls cb exactly once with its outcome: a Response
// (whatever its status) or an *Error. cb runs on the loop goroutine and
// never before Fetch returns. Fetch is safe from any goroutine: on the loop
// goroutine the transfer is handed to libcurl at once (or queued behind
// WithMaxClients); from another goroutine, or from inside a request's
// OnHeader or OnBody, it is handed over in the loop's next iteration.
//
// When the loop is closed, every pending transfer fails with an error
// wrapping ioloop.ErrClosed, and its cb runs on the goroutine that closes
// the loop; a Fetch after that calls cb before returning, on the caller's
// goroutine.
func (c *Client) Fetch(req *Request, cb func(*Response, error)) {
	c.FetchContext(context.Background(), req, cb)
}

// FetchContext is Fetch with a context: when ctx is done before the
// transfer completes, the transfer is stopped (taken out of libcurl, or
// out of the queue) and fails with an error wrapping ctx's cause
// (context.Canceled, context.DeadlineExceeded). The cancellation takes
// effect in the loop's next iteration; if the transfer completes first,
// cb gets its outcome.
func (c *Client) FetchContext(ctx context.Context, req *Request, cb func(*Response, error)) {
	if ctx == nil {
		ctx = context.Background()
	}
	t := transferPool.Get().(*transfer)
	t.c, t.req, t.cb, t.state = c, req, cb, stNew
	if req != nil && req.Timeout > 0 {
		t.deadline = time.Now().Add(req.Timeout)
	}
	if c.loop.InLoop() && c.depth == 0 && !c.torn && !c.closing.Load() {
		t.fresh = true
		c.watch(ctx, t)
		c.enqueue(t)
		return
	}
	c.mu.Lock()
	if c.loopErr != nil {
		err := c.loopErr
		c.mu.Unlock()
		c.deliver(t, nil, c.errFor(t, CodeOK, "", err))
		return
	}
	if c.gone || c.closed {
		c.ready = append(c.ready, finished{t: t, err: c.errFor(t, CodeOK, "", ErrClientClosed)})
	} else {
		t.state = stInbox
		c.inbox = append(c.inbox, t)
		c.watch(ctx, t) // under mu: see cancelLater
	}
	c.kickLocked()
}

// watch arranges for t to be cancelled when ctx is done.
func (c *Client) watch(ctx context.Context, t *transfer) {
	if ctx.Done() == nil {
		return
	}
	gen := t.gen
	t.stopCtx = context.AfterFunc(ctx, func() { c.cancelLater(t, gen, ctx) })
}

// kickLocked queues onKick on the loop unless it is queued already. If
// the loop is closed, its OnClose hook drains what is waiting.
func (c *Client) kickLocked() {
	need := !c.kicked
	c.kicked = true
	c.mu.Unlock()
	if need {
		_ = c.loop.AddCallback(c.kick)
	}
}

// Do runs req and waits for its outcome, for goroutines other than the
// loop's: on the loop goroutine it returns an error wrapping ErrDoOnLoop
// at once. ctx cancels it as with FetchContext; Do returns once the
// transfer is over (a cancellation takes effect within a loop iteration),
// so no callback of req runs after Do returns. Do waits for the loop: if
// the loop is stopped, Do waits until it runs again or is closed.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	if c.loop.InLoop() {
		e := &Error{Err: ErrDoOnLoop}
		if req != nil {
			e.Method, e.URL = methodOf(req), req.URL
		}
		return nil, e
	}
	ch := make(chan finished, 1)
	c.FetchContext(ctx, req, func(r *Response, err error) { ch <- finished{resp: r, err: err} })
	f := <-ch
	return f.resp, f.err
}

// Close stops the client: every transfer whose callback has not run yet
// fails with an error wrapping ErrClientClosed (a transfer that already
// failed keeps its own error), each exactly once, and libcurl's state is
// released. Later fetches fail with ErrClientClosed. On the loop goroutine
// (outside OnHeader and OnBody) all of that happens before Close returns;
// elsewhere Close returns at once and it happens in the loop's next
// iteration (or when the loop is closed, if it is not running). Close is
// idempotent and returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.closing.Store(true)
	gone := c.loopErr != nil
	c.mu.Unlock()
	if gone {
		return nil
	}
	if c.loop.InLoop() && c.depth == 0 {
		c.teardown()
		return nil
	}
	_ = c.loop.AddCallback(c.tearDown) // ErrClosed: the loop's OnClose hook tears down
	return nil
}

// ---- on the loop ----

// onKick takes what other goroutines handed over: outcomes to deliver and
// transfers to queue.
func (c *Client) onKick() {
	c.mu.Lock()
	inbox, ready := c.inbox, c.ready
	c.inbox, c.ready = c.spareIn[:0], c.spareRd[:0]
	c.spareIn, c.spareRd = nil, nil
	c.kicked = false
	c.mu.Unlock()

	for i, f := range ready {
		ready[i] = finished{}
		c.deliver(f.t, f.resp, f.err)
	}
	for i, t := range inbox {
		inbox[i] = nil
		if c.torn {
			c.deliver(t, nil, c.errFor(t, CodeOK, "", c.closeCause()))
		} else {
			c.enqueue(t)
		}
	}
	c.mu.Lock()
	if c.spareIn == nil {
		c.spareIn = inbox[:0]
	}
	if c.spareRd == nil {
		c.spareRd = ready[:0]
	}
	c.mu.Unlock()
}

// enqueue puts t at the back of the queue and starts what the cap allows.
// A transfer that has to wait gets a timer for its Timeout.
func (c *Client) enqueue(t *transfer) {
	t.state = stQueued
	c.queue = append(c.queue, queueEntry{t, t.gen})
	c.startQueued()
	if t.state == stQueued {
		t.fresh = false
		t.queuedAt = time.Now()
		if !t.deadline.IsZero() {
			gen := t.gen
			t.qtimer = c.loop.CallAt(t.deadline, func() { c.queueExpired(t, gen) })
		}
	}
}

// startQueued hands queued transfers to libcurl, oldest first, while the
// cap allows.
func (c *Client) startQueued() {
	for c.active < c.max && !c.torn {
		t := c.popQueued()
		if t == nil {
			return
		}
		c.begin(t)
	}
}

func (c *Client) popQueued() *transfer {
	for c.qhead < len(c.queue) {
		e := c.queue[c.qhead]
		c.queue[c.qhead] = queueEntry{}
		c.qhead++
		if e.live() {
			c.compactQueue()
			return e.t
		}
		c.qstale--
	}
	c.compactQueue()
	return nil
}

// live reports whether the entry's transfer still waits in the queue.
func (e queueEntry) live() bool { return e.t.gen == e.gen && e.t.state == stQueued }

// compactQueue reclaims the consumed head of the queue, and drops the
// entries of cancelled transfers once they are most of it, so that a
// stuck queue with many cancellations does not grow without bound.
func (c *Client) compactQueue() {
	switch {
	case c.qhead == len(c.queue):
		c.queue, c.qhead, c.qstale = c.queue[:0], 0, 0
	case c.qstale > 64 && c.qstale*2 > len(c.queue)-c.qhead:
		n := 0
		for _, e := range c.queue[c.qhead:] {
			if e.live() {
				c.queue[n] = e
				n++
			}
		}
		clear(c.queue[n:])
		c.queue, c.qhead, c.qstale = c.queue[:n], 0, 0
	case c.qhead > 64 && c.qhead*2 > len(c.queue):
		n := copy(c.queue, c.queue[c.qhead:])
		clear(c.queue[n:])
		c.queue, c.qhead = c.queue[:n], 0
	}
}

// queued counts the transfers waiting for a slot.
func (c *Client) queued() int { return len(c.queue) - c.qhead - c.qstale }

// begin hands t to libcurl on a free slot. A request that cannot start
// fails in the next loop turn (never inside Fetch).
func (c *Client) begin(t *transfer) {
	if t.qtimer != nil {
		c.loop.RemoveTimeout(t.qtimer)
		t.qtimer = nil
	}
	if !t.queuedAt.IsZero() {
		t.queued = time.Since(t.queuedAt)
	}
	r := t.req
	var p plan
	if err := planFor(r, &p); err != nil {
		c.failLater(t, CodeOK, "", err)
		return
	}
	if !t.deadline.IsZero() {
		left := r.Timeout
		if !t.fresh {
			left = time.Until(t.deadline)
		}
		if left <= 0 {
			c.failLater(t, CodeOperationTimedOut, fmt.Sprintf("request timed out after %v before it could start", r.Timeout), nil)
			return
		}
		p.timeoutMs = ceilMs(left)
	}
	if !c.multiOK {
		if mc := c.k.multi(c.max); mc != 0 {
			c.failLater(t, CodeOK, "", fmt.Errorf("curl_multi_init: %s", multiStrerror(mc)))
			return
		}
		c.multiOK = true
	}
	id, s, ok := c.takeSlot()
	if !ok {
		c.failLater(t, CodeOutOfMemory, CodeOutOfMemory.String(), syscall.ENOMEM)
		return
	}
	if err := s.fill(r, &p); err != nil {
		c.putSlot(id)
		c.failLater(t, CodeOK, "", err)
		return
	}
	if rc := s.start(); rc != 0 {
		c.putSlot(id)
		if rc >= 1000 {
			c.failLater(t, CodeOK, "", fmt.Errorf("curl_multi_add_handle: %s", multiStrerror(rc-1000)))
		} else {
			c.failLater(t, Code(rc), Code(rc).String(), nil)
		}
		return
	}
	t.state, t.id = stActive, id
	c.owner[id] = t
	c.active++
	if r.BodyReader != nil {
		c.startUpload(t)
	}
}

// planFor decides how the method and body are sent.
func planFor(r *Request, p *plan) error {
	if r == nil {
		return invalidf("nil request")
	}
	if r.URL == "" {
		return invalidf("empty URL")
	}
	if r.Body != nil && r.BodyReader != nil {
		return invalidf("both Body and BodyReader are set")
	}
	hasBody := r.Body != nil || r.BodyReader != nil
	m := methodOf(r)
	if !validToken(m) {
		return invalidf("method %q", m)
	}
	switch {
	case m == "HEAD":
		if hasBody {
			return invalidf("HEAD with a body")
		}
		p.head = true
	case m == "GET" && !hasBody:
	case hasBody || m == "POST" || m == "PUT" || m == "PATCH":
		// Like net/http, POST, PUT and PATCH without a body send an
		// empty one (Content-Length: 0).
		p.post = true
		p.custom = m != "POST"
	default:
		p.custom = true
	}
	p.method = m
	return nil
}

func methodOf(r *Request) string {
	if r.Method != "" {
		return r.Method
	}
	if r.Body != nil || r.BodyReader != nil {
		return "POST"
	}
	return "GET"
}

func (c *Client) takeSlot() (int32, slot, bool) {
	if n := len(c.free); n > 0 {
		id := c.free[n-1]
		c.free = c.free[:n-1]
		return id, c.slots[id], true
	}
	id := int32(len(c.slots))
	s, ok := c.k.newSlot(id)
	if !ok {
		return 0, slot{}, false
	}
	c.slots = append(c.slots, s)
	c.owner = append(c.owner, nil)
	return id, s, true
}

func (c *Client) putSlot(id int32) {
	c.slots[id].release()
	c.free = append(c.free, id)
}

// detach takes an active transfer off its slot.
func (c *Client) detach(t *transfer) {
	c.owner[t.id] = nil
	c.active--
	c.putSlot(t.id)
}

// onDone: libcurl completed transfers (called from C once per drain of
// curl_multi_info_read, outside libcurl). Every outcome is read and every
// slot freed before any callback runs, and queued transfers take the free
// slots first; a callback may then Fetch, Close, or close the loop.
func (c *Client) onDone() {
	c.calls++
	ids := c.k.takeDone(c.doneIDs[:0])
	batch := c.batch[:0]
	c.batch = nil // a callback reaching onDone again gets its own
	for _, id := range ids {
		t := c.owner[id]
		if t == nil {
			continue
		}
		o := c.slots[id].read(t.req, t.queued)
		c.detach(t)
		t.state = stDone
		batch = append(batch, c.outcome(t, o))
	}
	c.doneIDs = ids[:0]
	c.startQueued()
	for i := range batch {
		f := batch[i]
		batch[i] = finished{}
		c.deliver(f.t, f.resp, f.err)
	}
	if c.batch == nil {
		c.batch = batch[:0]
	}
}

// outcome turns what libcurl said into the callback's arguments.
func (c *Client) outcome(t *transfer, o outcome) finished {
	if o.code == CodeOK {
		return finished{t: t, resp: o.response}
	}
	msg := o.message
	if msg == "" {
		msg = o.code.String()
	}
	cause := t.cause
	switch {
	case c.closing.Load():
		return finished{t: t, err: c.errFor(t, CodeOK, "", ErrClientClosed)}
	case cause != nil:
	case o.oom:
		cause = syscall.ENOMEM
	case o.code == CodeAbortedByCallback && c.k.watchErrno() != 0:
		cause = fmt.Errorf("ioloop: watching libcurl's socket: %w", c.k.watchErrno())
	}
	return finished{t: t, err: c.errFor(t, o.code, msg, cause)}
}

func (c *Client) errFor(t *transfer, code Code, msg string, cause error) *Error {
	e := &Error{Code: code, Message: msg, Err: cause}
	if t.req != nil {
		e.Method, e.URL = methodOf(t.req), t.req.URL
	}
	return e
}

// failLater makes t fail in the next loop turn (not inside the Fetch or
// callback that started it).
func (c *Client) failLater(t *transfer, code Code, msg string, cause error) {
	t.state = stDone
	c.mu.Lock()
	c.ready = append(c.ready, finished{t: t, err: c.errFor(t, code, msg, cause)})
	c.kickLocked()
}

// deliver ends t and runs its callback.
func (c *Client) deliver(t *transfer, resp *Response, err error) {
	if resp != nil && c.closing.Load() {
		resp, err = nil, c.errFor(t, CodeOK, "", ErrClientClosed)
	}
	cb := t.cb
	c.recycle(t)
	if cb != nil {
		c.callback(cb, resp, err)
	}
}

func (c *Client) recycle(t *transfer) {
	if t.stopCtx != nil {
		t.stopCtx()
	}
	if t.qtimer != nil {
		c.loop.RemoveTimeout(t.qtimer)
	}
	if t.up != nil {
		t.up.finish()
	}
	*t = transfer{gen: t.gen + 1, state: stRecycle}
	transferPool.Put(t)
}

// callback runs a Fetch callback, logging a panic as the loop does with
// its own callbacks: it must not unwind through libcurl or the C core.
func (c *Client) callback(cb func(*Response, error), resp *Response, err error) {
	defer c.recoverUser("a Fetch callback")
	cb(resp, err)
}

func (c *Client) recoverUser(what string) {
	if r := recover(); r != nil {
		c.loop.Logger().Error("curl: panic in "+what, "panic", r, "stack", string(debug.Stack()))
	}
}

// cancelLater runs on a goroutine of context.AfterFunc: hop to the loop.
// A context that is done already fires at once, possibly before the
// FetchContext that registered it has handed t to the loop; that happens
// under mu, so queuing the hop under mu orders it after. (The loop never
// calls into the client holding its own lock, so the order mu, then the
// loop's lock, cannot deadlock.)
func (c *Client) cancelLater(t *transfer, gen uint64, ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.loop.AddCallback(func() { c.cancel(t, gen, CodeOK, "", context.Cause(ctx)) })
}

func (c *Client) queueExpired(t *transfer, gen uint64) {
	if t.gen == gen {
		t.qtimer = nil
	}
	c.cancel(t, gen, CodeOperationTimedOut,
		fmt.Sprintf("request timed out after %v while queued (%d transfers running, WithMaxClients(%d))",
			t.reqTimeout(), c.active, c.max), nil)
}

func (t *transfer) reqTimeout() time.Duration {
	if t.req == nil {
		return 0
	}
	return t.req.Timeout
}

// cancel fails t, wherever it is, if it is still the transfer gen names.
// Loop goroutine, outside libcurl callbacks.
func (c *Client) cancel(t *transfer, gen uint64, code Code, msg string, cause error) {
	if t.gen != gen {
		return
	}
	switch t.state {
	case stInbox:
		c.mu.Lock()
		for i, x := range c.inbox {
			if x == t {
				c.inbox = append(c.inbox[:i], c.inbox[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
	case stQueued:
		// Its queue entry goes stale: popQueued skips it.
		c.qstale++
		defer c.compactQueue()
	case stActive:
		c.slots[t.id].abort()
		c.detach(t)
		c.startQueued()
	default:
		return // completing already
	}
	t.state = stDone
	c.deliver(t, nil, c.errFor(t, code, msg, cause))
}

// onLoopClose is the loop's OnClose hook: the loop has stopped for good.
// It runs on the goroutine that releases the loop, while the C API still
// works.
func (c *Client) onLoopClose() {
	c.mu.Lock()
	c.loopErr = ioloop.ErrClosed
	c.mu.Unlock()
	c.unhook = nil
	c.teardown()
}

// closeCause is what pending transfers fail with at teardown.
func (c *Client) closeCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClientClosed
	}
	if c.loopErr != nil {
		return c.loopErr
	}
	return ErrClientClosed
}

// teardown fails every pending transfer once and frees libcurl's state:
// easy handles, header lists, buffers, the multi handle (which closes its
// connections and so removes its watches), the timer. Loop goroutine
// outside libcurl callbacks, or the OnClose hook.
func (c *Client) teardown() {
	if c.torn {
		return
	}
	c.torn = true
	if c.unhook != nil {
		c.unhook()
		c.unhook = nil
	}
	cause := c.closeCause()

	var pending []*transfer
	for id, t := range c.owner {
		if t != nil {
			c.owner[id] = nil
			pending = append(pending, t)
		}
	}
	c.active = 0
	for t := c.popQueued(); t != nil; t = c.popQueued() {
		pending = append(pending, t)
	}
	c.mu.Lock()
	c.gone = true
	inbox, ready := c.inbox, c.ready
	c.inbox, c.ready = nil, nil
	c.mu.Unlock()
	pending = append(pending, inbox...)

	c.recur = c.k.recursive()
	for _, s := range c.slots {
		s.free()
	}
	c.slots, c.free = nil, nil
	c.k.free()
	c.k = core{}
	c.handle.Delete()

	for _, t := range pending {
		t.state = stDone
		c.deliver(t, nil, c.errFor(t, CodeOK, "", cause))
	}
	for _, f := range ready {
		c.deliver(f.t, f.resp, f.err)
	}
}

// ---- inside libcurl (called from C) ----

// onHeader runs a request's OnHeader. false aborts the transfer.
func (c *Client) onHeader(id int32, line []byte) bool {
	c.calls++
	t := c.owner[id]
	if t == nil || t.req.OnHeader == nil || c.closing.Load() {
		return false
	}
	return c.inside(t, t.req.OnHeader, line)
}

// onBody runs a request's OnBody. false aborts the transfer.
func (c *Client) onBody(id int32, p []byte) bool {
	c.calls++
	t := c.owner[id]
	if t == nil || t.req.OnBody == nil || c.closing.Load() {
		return false
	}
	return c.inside(t, t.req.OnBody, p)
}

var errCallbackPanicked = errors.New("curl: a request callback panicked (see the loop's log)")

// inside runs a user callback from inside libcurl: Fetch and Close called
// there see depth > 0 and defer their work to the next loop turn. A panic
// is logged and aborts the transfer.
func (c *Client) inside(t *transfer, fn func([]byte) error, p []byte) (ok bool) {
	c.depth++
	defer func() {
		c.depth--
		if r := recover(); r != nil {
			c.loop.Logger().Error("curl: panic in a request callback", "panic", r, "stack", string(debug.Stack()))
			t.cause, ok = errCallbackPanicked, false
		}
	}()
	if err := fn(p); err != nil {
		t.cause = err
		return false
	}
	return true
}
