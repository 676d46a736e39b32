package wire

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestFields(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "node-a")
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, 300)
	type field struct {
		num   protowire.Number
		typ   protowire.Type
		value string
	}
	var got []field
	if !Fields(b, func(num protowire.Number, typ protowire.Type, v []byte) {
		got = append(got, field{num, typ, string(v)})
	}) {
		t.Fatal("a well-formed encoding read as malformed")
	}
	want := []field{{1, protowire.BytesType, "node-a"}, {4, protowire.VarintType, string(protowire.AppendVarint(nil, 300))}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("fields %v, want %v", got, want)
	}
	for _, bad := range [][]byte{b[:len(b)-1], b[:3], {0x80}, append([]byte{0x0a, 0x7f}, "short"...)} {
		if Fields(bad, func(protowire.Number, protowire.Type, []byte) {}) {
			t.Errorf("% x read as well-formed", bad)
		}
	}
	if !Fields(nil, func(protowire.Number, protowire.Type, []byte) { t.Error("a field in nothing") }) {
		t.Error("an empty encoding read as malformed")
	}
}
