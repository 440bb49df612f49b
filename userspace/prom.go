package userspace

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/xdp"
)

// collector exposes a server's counters to Prometheus. It reads the
// workers' atomics at scrape time: the hot paths never call Prometheus.
type collector struct {
	srv *Server
	svc *Service
}

var (
	descRx      = prometheus.NewDesc("rebound_requests_total", "Requests received.", []string{"transport", "queue"}, nil)
	descTx      = prometheus.NewDesc("rebound_replies_total", "Replies sent.", []string{"transport", "queue"}, nil)
	descDrops   = prometheus.NewDesc("rebound_drops_total", "Frames or messages not answered, by reason.", []string{"transport", "queue", "reason"}, nil)
	descRejects = prometheus.NewDesc("rebound_rejects_total", "Requests answered with an error status, by reason.", []string{"transport", "queue", "reason"}, nil)
	descTxErr   = prometheus.NewDesc("rebound_tx_errors_total", "Replies the transport failed to send.", []string{"transport", "queue"}, nil)
	descRxErr   = prometheus.NewDesc("rebound_rx_errors_total", "Receive calls that failed.", []string{"transport", "queue"}, nil)
	descGRO     = prometheus.NewDesc("rebound_udp_coalesced_total", "UDP requests that arrived merged by GRO (UDP_GRO) and were cut apart.", []string{"transport", "queue"}, nil)
	descGSO     = prometheus.NewDesc("rebound_udp_gso_sends_total", "UDP sends that carried several replies as one GSO message (UDP_SEGMENT).", []string{"transport", "queue"}, nil)
	descGSOOff  = prometheus.NewDesc("rebound_udp_gso_off", "1 when GSO is off on the worker's socket: the kernel lacks or refused it (replies then go one by one).", []string{"transport", "queue"}, nil)
	descBatch   = prometheus.NewDesc("rebound_batch_size", "Requests per handler batch.", []string{"transport", "queue"}, nil)
	descService = prometheus.NewDesc("rebound_handler_seconds", "Handler time per batch.", []string{"transport", "queue"}, nil)
	descUp      = prometheus.NewDesc("rebound_worker_up", "1 while the worker serves; 0 once it stopped on an error (an AF_XDP queue then falls back to the kernel).", []string{"transport", "queue"}, nil)
	descStalled = prometheus.NewDesc("rebound_worker_tx_stalled", "1 while the worker's tx ring has not drained for a second (link down?).", []string{"transport", "queue"}, nil)
	descXSK     = prometheus.NewDesc("rebound_xsk_events_total", "AF_XDP socket statistics from the kernel.", []string{"queue", "event"}, nil)
	descXDP     = prometheus.NewDesc("rebound_xdp_packets_total", "Packets seen by the XDP program, by outcome.", []string{"outcome"}, nil)
	descAnswers = prometheus.NewDesc("rebound_xdp_answers_total", "Requests the XDP program tried to answer itself, by op and outcome (hit: answered with XDP_TX; the others went on to userspace).", []string{"op", "outcome"}, nil)
	descAItems  = prometheus.NewDesc("rebound_xdp_answer_items", "Items held in the XDP program's map.", nil, nil)
	descANoRoom = prometheus.NewDesc("rebound_xdp_answer_no_room_total", "Writes not copied to the XDP program's map for want of room (the key is left to userspace).", nil, nil)
	descAOff    = prometheus.NewDesc("rebound_xdp_answers_failed", "1 once a map update failed and answering in XDP was turned off for good.", nil, nil)
	descItems   = prometheus.NewDesc("rebound_kv_items", "Items in the kv store.", nil, nil)
	descEvict   = prometheus.NewDesc("rebound_kv_evictions_total", "Items evicted from the kv store to make room.", nil, nil)
	descExpired = prometheus.NewDesc("rebound_kv_expired_total", "Items that expired (TTL).", nil, nil)
	descBytes   = prometheus.NewDesc("rebound_kv_bytes", "Bytes the kv store counts against its memory bound.", nil, nil)
	descMCCmds  = prometheus.NewDesc("rebound_memcache_commands_total", "memcached commands executed, by command.", []string{"cmd"}, nil)
	descMCOut   = prometheus.NewDesc("rebound_memcache_outcomes_total", "memcached command outcomes, by command and outcome.", []string{"cmd", "outcome"}, nil)
	descMCConns = prometheus.NewDesc("rebound_memcache_connections", "memcached TCP connections open.", nil, nil)
	descMCBytes = prometheus.NewDesc("rebound_memcache_bytes_total", "Bytes of memcached's protocol read from clients and written to them (memcached's bytes_read, bytes_written).", []string{"direction"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, w := range c.srv.Stats() {
		q := strconv.Itoa(w.Queue)
		gauge := func(d *prometheus.Desc, on bool) {
			v := 0.0
			if on {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, w.Transport, q)
		}
		gauge(descUp, !w.Failed.Load())
		gauge(descStalled, w.TxStalled.Load())
		counter(descRx, w.Rx.Load(), w.Transport, q)
		counter(descTx, w.Tx.Load(), w.Transport, q)
		counter(descTxErr, w.TxErrors.Load(), w.Transport, q)
		counter(descRxErr, w.RxErrors.Load(), w.Transport, q)
		if strings.HasSuffix(w.Transport, "udp") { // the socket workers
			counter(descGRO, w.Coalesced.Load(), w.Transport, q)
			counter(descGSO, w.GSOSends.Load(), w.Transport, q)
			gauge(descGSOOff, w.GSOOff.Load())
		}
		for r := range w.Drops {
			if v := w.Drops[r].Load(); v > 0 {
				counter(descDrops, v, w.Transport, q, codec.Reason(r).String())
			}
			if v := w.Rejects[r].Load(); v > 0 {
				counter(descRejects, v, w.Transport, q, codec.Reason(r).String())
			}
		}
		buckets, count := map[float64]uint64{}, uint64(0)
		for i := range w.BatchSize {
			count += w.BatchSize[i].Load()
			buckets[float64(uint64(2)<<i)-1] = count
		}
		ch <- prometheus.MustNewConstHistogram(descBatch, count, 0, buckets, w.Transport, q)
		buckets, count = map[float64]uint64{}, 0
		for i := 0; i < histBuckets-1; i++ {
			count += w.Service.Counts[i].Load()
			buckets[w.Service.Bound(i)] = count
		}
		count += w.Service.Counts[histBuckets-1].Load()
		ch <- prometheus.MustNewConstHistogram(descService, count, float64(w.Service.SumNs.Load())/1e9, buckets, w.Transport, q)
	}
	c.srv.inspect(func(prog *bpf.Program, socks []*xdp.Socket) {
		for _, s := range socks {
			st, err := s.Statistics()
			if err != nil {
				continue
			}
			q := strconv.Itoa(s.Queue())
			counter(descXSK, st.RxDropped, q, "rx_dropped")
			counter(descXSK, st.RxInvalidDescs, q, "rx_invalid_descs")
			counter(descXSK, st.TxInvalidDescs, q, "tx_invalid_descs")
			counter(descXSK, st.RxRingFull, q, "rx_ring_full")
			counter(descXSK, st.RxFillRingEmptyDescs, q, "rx_fill_ring_empty_descs")
			counter(descXSK, st.TxRingEmptyDescs, q, "tx_ring_empty_descs")
		}
		if prog != nil {
			if cs, err := prog.Counters(); err == nil {
				for i, v := range cs {
					counter(descXDP, v, bpf.Counter(i).String())
				}
			}
			if as, err := prog.AnswerCounters(); err == nil {
				for op, row := range as {
					for o, v := range row {
						counter(descAnswers, v, bpf.AnswerOp(op).String(), bpf.AnswerOutcome(o).String())
					}
				}
			}
			if items := prog.Items(); items != nil {
				st := items.Stats()
				ch <- prometheus.MustNewConstMetric(descAItems, prometheus.GaugeValue, float64(st.Items))
				counter(descANoRoom, st.NoRoom)
				off := 0.0
				if items.Err() != nil {
					off = 1
				}
				ch <- prometheus.MustNewConstMetric(descAOff, prometheus.GaugeValue, off)
			}
		}
	})
	if c.svc != nil {
		st := c.svc.StoreStats()
		ch <- prometheus.MustNewConstMetric(descItems, prometheus.GaugeValue, float64(st.Items))
		counter(descEvict, uint64(st.Evictions))
		counter(descExpired, uint64(st.Expired))
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(st.Bytes))
	}
	if h := c.srv.cfg.Memcache; h != nil {
		m := h.Stats()
		for _, v := range []struct {
			cmd string
			n   uint64
		}{{"get", m.CmdGet}, {"set", m.CmdSet}, {"flush", m.CmdFlush}, {"touch", m.CmdTouch}, {"meta", m.CmdMeta}} {
			counter(descMCCmds, v.n, v.cmd)
		}
		for _, v := range []struct {
			cmd, outcome string
			n            uint64
		}{
			{"get", "hit", m.GetHits}, {"get", "miss", m.GetMisses},
			{"delete", "hit", m.DeleteHits}, {"delete", "miss", m.DeleteMisses},
			{"incr", "hit", m.IncrHits}, {"incr", "miss", m.IncrMisses},
			{"decr", "hit", m.DecrHits}, {"decr", "miss", m.DecrMisses},
			{"cas", "hit", m.CasHits}, {"cas", "miss", m.CasMisses}, {"cas", "badval", m.CasBadval},
			{"touch", "hit", m.TouchHits}, {"touch", "miss", m.TouchMisses},
			{"set", "too_large", m.StoreTooLarge},
		} {
			counter(descMCOut, v.n, v.cmd, v.outcome)
		}
		counter(descMCBytes, m.BytesRead, "read")
		counter(descMCBytes, m.BytesWritten, "written")
		curr, _ := c.srv.MemcacheConns()
		ch <- prometheus.MustNewConstMetric(descMCConns, prometheus.GaugeValue, float64(curr))
	}
}

// MetricsHandler serves the server's metrics (and the Go runtime's) in the
// Prometheus text format. svc may be nil for a custom handler.
func MetricsHandler(srv *Server, svc *Service) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{srv: srv, svc: svc}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
