package userspace

import (
	"time"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/rebound"
)

// dgram is one UDP payload of a batch, answered in place: buf[:len(buf)]
// is the request, and the reply is written over it, up to cap(buf).
type dgram struct {
	buf      []byte
	pathMax  int // largest UDP payload the path carries (MTU)
	msg      int // index in batcher.msgs, or -1
	limit    int // room for the reply payload (amplification, path, buffer)
	replyLen int // 0: no reply (dropped)
	skip     bool
}

// batcher turns a batch of UDP payloads into replies, in place, with one
// Handler call. The UDP socket path and the AF_XDP path share it, so the
// protocol rules and the amplification bound are applied by one piece of
// code. Its slices are reused from batch to batch: it allocates nothing in
// steady state.
type batcher struct {
	items []dgram
	msgs  []Message
	amp   int
	stats *WorkerStats
}

func newBatcher(size, amp int, stats *WorkerStats) batcher {
	return batcher{items: make([]dgram, 0, size), msgs: make([]Message, 0, size), amp: amp, stats: stats}
}

// add queues one request payload (len: the datagram, cap: the reply room).
func (b *batcher) add(buf []byte, pathMax int) {
	b.items = append(b.items, dgram{buf: buf, pathMax: pathMax, msg: -1})
}

// skip queues a place for a datagram that was already refused (and
// counted), so that items stay aligned with the caller's datagrams.
func (b *batcher) skip() {
	b.items = append(b.items, dgram{msg: -1, skip: true})
}

// run validates every queued datagram, serves the valid ones with h in one
// call, and leaves each reply (or nothing) in place; replyLen says its size.
func (b *batcher) run(h Handler) {
	b.msgs = b.msgs[:0]
	for i := range b.items {
		it := &b.items[i]
		if it.skip {
			continue
		}
		req := rebound.ParseDatagram(it.buf)
		switch req.Check {
		case rebound.Drop:
			b.stats.Drops[req.Reason].Add(1)
		case rebound.Reject:
			b.stats.Rejects[req.Reason].Add(1)
			it.replyLen = rebound.PutErrorReply(it.buf[:rebound.HeaderLen], req.Header, req.Status)
		case rebound.Valid:
			it.limit = max(codec.ReplyLimit(len(it.buf), b.amp, min(it.pathMax, cap(it.buf)))-rebound.HeaderLen, 0)
			out := it.buf[rebound.HeaderLen : rebound.HeaderLen : rebound.HeaderLen+it.limit]
			it.msg = len(b.msgs)
			b.msgs = append(b.msgs, Message{Op: req.Op, Seq: req.Seq, Payload: req.Payload, Out: out})
		}
	}
	if len(b.msgs) > 0 {
		start := time.Now()
		h.Serve(b.msgs)
		b.stats.Service.Observe(time.Since(start))
		b.stats.batch(len(b.msgs))
	}
	for i := range b.items {
		it := &b.items[i]
		if it.msg < 0 {
			continue
		}
		m := &b.msgs[it.msg]
		switch m.Status {
		case rebound.StatusBadRequest:
			b.stats.Rejects[codec.ReasonBadPayload].Add(1)
		case rebound.StatusTooLarge:
			b.stats.Rejects[codec.ReasonTooLarge].Add(1)
		}
		switch {
		case len(m.Out) > it.limit:
			// A handler that ignored Out's capacity: the bound holds anyway.
			m.Out, m.Truncated = nil, true
		case len(m.Out) > 0 && &m.Out[0] != &it.buf[rebound.HeaderLen : rebound.HeaderLen+1][0]:
			// The handler pointed Out at memory of its own: copy it in.
			m.Out = it.buf[rebound.HeaderLen : rebound.HeaderLen+copy(it.buf[rebound.HeaderLen:rebound.HeaderLen+it.limit], m.Out)]
		}
		it.replyLen = putReply(it.buf[:rebound.HeaderLen], m)
	}
	b.stats.Rx.Add(uint64(len(b.items)))
}

// reset empties the batch for the next round.
func (b *batcher) reset() {
	clear(b.msgs) // drop references to frame memory
	b.items, b.msgs = b.items[:0], b.msgs[:0]
}
