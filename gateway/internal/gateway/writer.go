package gateway

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A writer writes connections' queued frames from one goroutine: a
// connection with frames to send is put on a writer's ready list, and the
// writer, running only while the list is non-empty, writes each one's queue
// as one batch with a single non-blocking write. At low rates this is the
// cheapest delivery there is (no goroutine started per delivery, no write
// deadline set and cleared per write, the socket written straight from the
// list); under load, frames that arrive while a connection waits on the list
// join its batch: many frames, one syscall.
//
// A socket that does not take a whole batch at once is a slow reader: the
// writer hands it to a goroutine of its own (conn.drain), which finishes the
// batch with a blocking write bounded by the write timeout. The writer
// never waits for a socket, so one slow client cannot delay the others.
type writer struct {
	env *connEnv

	mu      sync.Mutex
	ready   []*conn
	running bool

	// Used by the running writer goroutine only.
	pubs  []int64    // publish times of the batch being written (latency histogram)
	bytes batchBytes // payload bytes of the batch being written
}

// yieldEvery is how many sockets a writer writes before it yields the
// processor (≈ 0.5 ms of writes here).
const yieldEvery = 64

// writers spreads connections round-robin over the writers (Config.Writers,
// GOMAXPROCS by default).
type writers struct {
	all  []*writer
	next atomic.Uint32
}

func newWriters(env *connEnv, n int) *writers {
	ws := &writers{}
	for i := 0; i < max(n, 1); i++ {
		ws.all = append(ws.all, &writer{env: env})
	}
	return ws
}

// pick returns the writer for a new connection (nil without writers).
func (ws *writers) pick() *writer {
	if ws == nil {
		return nil
	}
	return ws.all[ws.next.Add(1)%uint32(len(ws.all))]
}

// schedule puts c on the ready list; the caller has set c.writing, so c is
// on at most one list (or with its own drain goroutine) at a time.
func (w *writer) schedule(c *conn) {
	w.mu.Lock()
	w.ready = append(w.ready, c)
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		go w.run()
	}
}

// run writes ready connections until the list is empty.
func (w *writer) run() {
	var batch []*conn
	for {
		w.mu.Lock()
		if len(w.ready) == 0 {
			w.running = false
			if cap(w.ready) > 1<<16 {
				w.ready = nil // a burst-sized list is not kept
			}
			w.mu.Unlock()
			return
		}
		batch, w.ready = w.ready, batch[:0]
		w.mu.Unlock()
		for i, c := range batch {
			w.write(c)
			batch[i] = nil
			if i%yieldEvery == yieldEvery-1 {
				// The writes do not pass through the scheduler (see
				// batchconn.TryFlush): let the bus reader, the dispatchers
				// and the handlers run between stretches of them.
				runtime.Gosched()
			}
		}
	}
}

// write sends c's queued frames as one batch, without waiting for the
// socket.
func (w *writer) write(c *conn) {
	if !c.nc.TryBegin() {
		// The websocket library is writing (a pong or close frame to a
		// socket that does not take it): not this goroutine's wait.
		go c.drain()
		return
	}
	c.mu.Lock()
	for _, f := range c.queue {
		c.appendFrame(f, &w.bytes)
		if f.publishedAt > 0 {
			w.pubs = append(w.pubs, f.publishedAt)
		}
	}
	clear(c.queue)
	c.queue = c.queue[:0]
	c.signalRoomLocked()
	c.mu.Unlock()

	done, err := c.nc.TryFlush()
	if err == nil && len(w.pubs) > 0 {
		w.env.metrics.observeLatency(w.pubs, w.env.now())
	}
	w.pubs = w.pubs[:0]
	w.bytes.record(w.env.metrics.compression) // written, or left for drain to write
	switch {
	case err != nil:
		// The teardown runs elsewhere: the writer has other sockets to serve.
		go c.writeFailed(err)
	case !done:
		// Part of the batch is left: a goroutine that may block finishes it
		// (and writes what is queued meanwhile).
		go c.drain()
	default:
		c.written(w)
	}
}

// written ends a batch written in full: c goes back on the list if frames
// arrived meanwhile, else it is idle again (and closed, if it was asked to
// close once its queue was written).
func (c *conn) written(w *writer) {
	c.mu.Lock()
	if len(c.queue) > 0 {
		c.mu.Unlock()
		w.schedule(c) // behind the others: each connection gets its turn
		return
	}
	c.idleLocked()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		go c.closeIfAsked()
	}
}
