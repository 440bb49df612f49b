package mcserve

import mc "github.com/rebound-net/rebound/codec/memcache"

// ServeDatagram runs the request in one UDP datagram (payload starts with
// the 8-byte frame header) and appends the reply, without frame headers, to
// out. ok is false when the datagram must be dropped without a reply, as
// memcached drops it: shorter than a header, or Total != 1 (requests in
// several datagrams are not supported). Seq and Reserved are ignored, as
// memcached ignores them; hdr is the request's header, whose RequestID the
// reply datagrams carry.
//
// memcached sends the reply to each command of the datagram as a message of
// its own (and each key of a multi-get too, END joining the last), each
// numbered from 0 with its own total. ends gives the end offsets in out of
// those messages (the first starts at len(out) on entry): the transport
// frames out[prev:ends[i]] with memcache.UDPDatagrams/UDPChunk. A message
// may be empty, only the first (a multi-get starting with a missed key, or
// quit first): memcached sends it as a lone 8-byte header with Seq 0 and
// Total 0. ends is
// owned by the Conn and valid until its next call.
//
// Every datagram stands alone: an incomplete command at its end is dropped,
// and a refused value is not swallowed into the next datagram.
func (c *Conn) ServeDatagram(payload, out []byte) (out2 []byte, ends []int, hdr mc.UDPHeader, ok bool) {
	out2, ends, hdr, ok, _ = c.ServeDatagramWithin(payload, out, 0)
	return out2, ends, hdr, ok
}

// ServeDatagramWithin is ServeDatagram with a budget fixed before the
// request runs: the reply (unframed) may take at most budget bytes (0: no
// bound). A command that would pass it stops the datagram there, before its
// value is copied: over is then true, out holds nothing of this datagram,
// and the transport answers with an error of its own instead (commands
// before it have run, as memcached runs them).
func (c *Conn) ServeDatagramWithin(payload, out []byte, budget int) (out2 []byte, ends []int, hdr mc.UDPHeader, ok, over bool) {
	hdr, ok = mc.ParseUDPHeader(payload)
	if !ok || hdr.Total != 1 {
		return out, nil, hdr, false, false
	}
	c.udp, c.base, c.ends, c.swallow, c.proto = true, len(out), c.ends[:0], 0, protoUnknown
	c.budget, c.over, c.silent = budget, false, false
	defer func() { c.budget, c.over, c.silent = 0, false, false }()
	_, out, _, closed := c.Serve(payload[mc.UDPHeaderLen:], out)
	if c.silent {
		c.udp, c.swallow = false, 0
		return out[:c.base], nil, hdr, true, false
	}
	if c.over {
		c.udp, c.swallow = false, 0
		return out[:c.base], nil, hdr, true, true
	}
	c.endMessage(out)
	if closed { // quit: an empty message, and nothing after it
		c.ends = append(c.ends, len(out))
	}
	// memcached sends an empty message only when it comes first.
	ends, prev := c.ends[:0], c.base
	for i, e := range c.ends {
		if e > prev || i == 0 {
			ends = append(ends, e)
		}
		prev = e
	}
	c.ends = ends
	c.udp, c.swallow = false, 0
	return out, c.ends, hdr, true, false
}
