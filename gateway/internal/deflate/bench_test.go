package deflate

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkCompress: one event's compression, paid once per pod whatever
// its fan-out.
func BenchmarkCompress(b *testing.B) {
	e := NewEncoder(DefaultMinSize, DefaultLevel)
	frame := []byte(chat)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if e.Compress(frame) == nil {
			b.Fatal("not compressed")
		}
	}
}

// BenchmarkReaderPlain: what a compressing connection's plain frames cost
// to pass through the Reader (a browser's heartbeat, uncompressed).
func BenchmarkReaderPlain(b *testing.B) {
	benchmarkReader(b, clientFrame(true, false, 1, []byte(`{"type":"heartbeat"}`), 1))
}

// BenchmarkReaderCompressed: a compressed client message inflated.
func BenchmarkReaderCompressed(b *testing.B) {
	benchmarkReader(b, clientFrame(true, true, 1, compressedBytes(`{"type":"subscribe","data":{"channel_id":"ch_7f3a9c"}}`), 1))
}

func benchmarkReader(b *testing.B, in []byte) {
	f := NewInflater(4096)
	src := bytes.NewReader(in)
	r := f.NewReader(src)
	buf := make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(in)
		for {
			if _, err := r.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
