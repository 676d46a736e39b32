package wire

import "google.golang.org/protobuf/encoding/protowire"

// Fields calls fn for each top-level field of the protobuf encoding b, in
// order, with its number, type and value (a length-delimited field's
// contents, without the length), and reports whether b is well-formed to
// its end. The aggregator reads a received message's fields this way to
// keep an event's bytes as they came.
func Fields(b []byte, fn func(num protowire.Number, typ protowire.Type, value []byte)) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return false
		}
		v := b[:m]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(v)
		}
		fn(num, typ, v)
		b = b[m:]
	}
	return true
}
