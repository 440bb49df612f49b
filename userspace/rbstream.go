package userspace

import (
	"slices"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
)

// rbStream is the Rebound protocol over TCP as a handler.Stream, served by
// the one TCP connection loop (serveConn): length-prefixed messages, served
// in batches of up to tcpBatch with one Handler call each.
//
// Each message of a batch gets a slot in out: a header and an even share
// of the batch's reply room as its reply's room. After the Handler call
// the replies are slid together in request order. A reply that did not
// fit its room (a large GET or PING; both only read, so serving again is
// safe) is served again alone, with room for the largest payload, once
// the replies before it are written: a batch holds at most its rooms and
// one maximal reply.
type rbStream struct {
	h     Handler
	stats *WorkerStats
	msgs  []Message
	offs  []int // per message: its slot in out
	room  int   // reply room of one batch; doubles (to tcpOutBuf) when a reply did not fit
	big   []byte
	one   [1]Message // a message served again alone
	flush func([]byte) error
	at    int
}

// Rebound protocol over TCP.
const (
	tcpBatch  = 64        // messages served per Handler call
	tcpRoom   = 4 << 10   // a batch's first reply room
	tcpOutBuf = 256 << 10 // the most reply room of one batch
	tcpMaxReq = rebound.HeaderLen + rebound.MaxPayload
)

func newRBStream(h Handler, stats *WorkerStats) *rbStream {
	return &rbStream{h: h, stats: stats, msgs: make([]Message, 0, tcpBatch), offs: make([]int, 0, tcpBatch), room: tcpRoom}
}

func (r *rbStream) countsItself() {}

func (r *rbStream) setFlush(write func([]byte) error, at int) { r.flush, r.at = write, at }

// ServeStream serves the complete messages at the start of in, a batch at
// a time.
func (r *rbStream) ServeStream(in, out []byte) (consumed int, reply []byte, need int, closeIt bool) {
	for consumed < len(in) && !closeIt && need == 0 {
		r.msgs, r.offs = r.msgs[:0], r.offs[:0]
		for len(r.msgs) < tcpBatch && consumed < len(in) && !closeIt {
			req, n, want, fatal := rebound.ParseStream(in[consumed:])
			if n == 0 {
				need = want
				break
			}
			consumed += n
			switch req.Check {
			case rebound.Drop:
				r.stats.Drops[req.Reason].Add(1)
				continue
			case rebound.Reject:
				r.stats.Rejects[req.Reason].Add(1)
				r.msgs = append(r.msgs, Message{Op: req.Op, Seq: req.Seq, Status: req.Status})
				r.offs = append(r.offs, -1)
				closeIt = fatal
				continue
			}
			r.msgs = append(r.msgs, Message{Op: req.Op, Seq: req.Seq, Payload: req.Payload})
			r.offs = append(r.offs, 0)
		}
		if len(r.msgs) == 0 {
			break
		}
		r.stats.Rx.Add(uint64(len(r.msgs)))
		var err error
		if out, err = r.serveBatch(out); err != nil {
			return consumed, out, 0, true
		}
		r.stats.Tx.Add(uint64(len(r.msgs)))
		clear(r.msgs) // no views of in or out kept
		if r.flush != nil && len(out) >= r.at {
			if r.flush(out) != nil {
				return consumed, out[:0], 0, true
			}
			out = out[:0]
		}
	}
	return consumed, out, need, closeIt
}

// serveBatch serves r.msgs and appends their replies to out, in order.
func (r *rbStream) serveBatch(out []byte) ([]byte, error) {
	valid := 0
	for _, o := range r.offs {
		if o == 0 {
			valid++
		}
	}
	share := 0
	if valid > 0 {
		share = min(r.room/valid, rebound.MaxPayload)
	}
	// Lay the slots out: a header for every message, and a share of the
	// room for each valid one.
	base := len(out)
	out = slices.Grow(out, len(r.msgs)*rebound.HeaderLen+valid*share)
	off := base
	for i := range r.msgs {
		start := off
		off += rebound.HeaderLen
		if r.offs[i] < 0 {
			r.offs[i] = -1 - start // an error reply: a bare header at start
			continue
		}
		r.offs[i] = start
		r.msgs[i].Out = out[off:off:min(off+share, cap(out))]
		off += share
	}
	out = out[:off]
	if valid > 0 {
		t := time.Now()
		r.h.Serve(r.msgs)
		r.stats.Service.Observe(time.Since(t))
		r.stats.batch(valid)
	}
	// Slide the replies together, in order. Each reply is no longer than
	// its slot, so a reply only ever moves toward the front.
	w := base
	for i := range r.msgs {
		m := &r.msgs[i]
		if o := r.offs[i]; o < 0 {
			w += rebound.PutErrorReply(out[w:], rebound.Header{Op: m.Op, Seq: m.Seq}, m.Status)
			continue
		}
		if m.Truncated && m.Status == rebound.StatusOK {
			var err error
			if out, w, err = r.serveAlone(m, out, w); err != nil {
				return out[:0], err
			}
			continue
		}
		n := rebound.HeaderLen + len(m.Out)
		copy(out[w+rebound.HeaderLen:], m.Out) // from its room, toward the front
		w += putReply(out[w:w+n], m)
	}
	return out[:w], nil
}

// serveAlone serves m again with room for the largest payload. With a
// flush, the replies before it (out[:w]) are written first and its reply
// is written from a buffer of its own; without one, it is slid into out at
// w. It returns out and the new end of the written replies.
func (r *rbStream) serveAlone(m *Message, out []byte, w int) ([]byte, int, error) {
	r.room = min(2*r.room, tcpOutBuf) // larger rooms next time
	if r.big == nil {
		r.big = make([]byte, tcpMaxReq)
	}
	r.one[0] = Message{Op: m.Op, Seq: m.Seq, Payload: m.Payload, Out: r.big[rebound.HeaderLen:rebound.HeaderLen]}
	r.h.Serve(r.one[:])
	reply := r.big[:putReply(r.big, &r.one[0])]
	r.one[0] = Message{}
	if r.flush != nil {
		if err := r.flush(out[:w]); err != nil {
			return out, w, err
		}
		if err := r.flush(reply); err != nil {
			return out, w, err
		}
		// What follows in out (later slots) stays where it is: every later
		// reply still only moves toward the front, now from 0.
		return out, 0, nil
	}
	n := len(out)
	out = append(out, reply...) // grow by len(reply)
	copy(out[w+len(reply):], out[w:n])
	copy(out[w:], reply)
	return out, w + len(reply), nil
}
