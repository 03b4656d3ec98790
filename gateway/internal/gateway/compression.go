package gateway

import (
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocvr/realtime/gateway/internal/batchconn"
	"github.com/ocvr/realtime/gateway/internal/deflate"
)

// compression is the pod's permessage-deflate (Config.Compression; nil:
// off). The websocket library runs with compression off on every socket:
// the extension is negotiated here, events are compressed once per pod by
// the dispatcher that validates them (event.z) and written with RSV1 by
// the shared writers, and client messages are inflated below the library
// (deflate.Reader), within the read limit.
type compression struct {
	enc *deflate.Encoder
	inf *deflate.Inflater
}

func newCompression(cfg Config) *compression {
	if !cfg.Compression {
		return nil
	}
	return &compression{
		enc: deflate.NewEncoder(cfg.CompressionMinSize, deflate.DefaultLevel),
		inf: deflate.NewInflater(int(cfg.ReadLimit)),
	}
}

// encoder is the events' encoder (nil: compression off).
func (z *compression) encoder() *deflate.Encoder {
	if z == nil {
		return nil
	}
	return z.enc
}

// negotiate answers the upgrade's permessage-deflate offer, if any: the
// extension in the 101 response and the socket's reads inflated. It
// reports whether the connection compresses.
func (z *compression) negotiate(bw *batchconn.ResponseWriter, r *http.Request) bool {
	if z == nil || !deflate.Negotiate(r.Header) {
		return false
	}
	bw.Header().Set("Sec-WebSocket-Extensions", deflate.Response)
	bw.FilterReads(func(src io.Reader) batchconn.ReadFilter { return z.inf.NewReader(src) })
	return true
}

// compressionMetrics: what compression saves on the wire.
type compressionMetrics struct {
	conns     *prometheus.CounterVec // connections opened, by whether they compress
	payload   *prometheus.CounterVec // frame payload bytes written, by encoding
	deflated  prometheus.Counter     // the uncompressed size of the frames written compressed
	identity  prometheus.Counter
	compress  prometheus.Counter
	negotiate [2]prometheus.Counter // by negotiated: false, true
}

func newCompressionMetrics(reg *prometheus.Registry) *compressionMetrics {
	m := &compressionMetrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_compression_negotiated_total",
			Help: "Connections opened, by whether they negotiated permessage-deflate (true/false)."}, []string{"negotiated"}),
		payload: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_frame_payload_bytes_total",
			Help: "Payload bytes of the frames written to clients, as sent: identity (uncompressed) or deflate (compressed)."}, []string{"encoding"}),
		deflated: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_deflated_source_bytes_total",
			Help: "Uncompressed size of the frames written compressed: frame_payload_bytes_total{encoding=\"deflate\"} over this is the compression ratio."}),
	}
	reg.MustRegister(m.conns, m.payload, m.deflated)
	m.identity, m.compress = m.payload.WithLabelValues("identity"), m.payload.WithLabelValues("deflate")
	m.negotiate = [2]prometheus.Counter{m.conns.WithLabelValues("false"), m.conns.WithLabelValues("true")}
	return m
}

func (m *compressionMetrics) negotiated(yes bool) {
	if yes {
		m.negotiate[1].Inc()
	} else {
		m.negotiate[0].Inc()
	}
}

// wrote counts one batch's payload bytes: plain, compressed, and the
// uncompressed size of the compressed ones.
func (m *compressionMetrics) wrote(plain, compressed, source int) {
	if plain > 0 {
		m.identity.Add(float64(plain))
	}
	if compressed > 0 {
		m.compress.Add(float64(compressed))
		m.deflated.Add(float64(source))
	}
}

// appendFrame appends f to c's open batch, compressed when c negotiated it
// and the event has a compressed form; it adds the payload bytes to the
// batch's counts.
func (c *conn) appendFrame(f outFrame, n *batchBytes) {
	if f.z != nil {
		c.nc.AppendDeflated(f.z)
		n.compressed += len(f.z)
		n.source += len(f.data)
		return
	}
	c.nc.AppendText(f.data)
	n.plain += len(f.data)
}

// batchBytes are one batch's payload byte counts.
type batchBytes struct{ plain, compressed, source int }

func (n *batchBytes) record(m *compressionMetrics) {
	m.wrote(n.plain, n.compressed, n.source)
	*n = batchBytes{}
}
