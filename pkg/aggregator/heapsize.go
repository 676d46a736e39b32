package aggregator

import (
	"reflect"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// heapSize estimates the memory a decoded event holds: its encoded size,
// which bounds the text of its strings and bytes, plus each message's Go
// struct and the slots of its lists and maps (shapeSize). The encoded size
// alone says little: an empty victim encodes to two bytes and decodes to
// a struct of a hundred, a kill's line to its text and a 16-byte header.
// Real kills decode to 1.6-2.3 times their encoded size, a crafted one up
// to 90 times, which is why the watchers' bound counts this.
func heapSize(m proto.Message) int64 {
	return int64(proto.Size(m)) + shapeSize(m.ProtoReflect())
}

// shapeSize is the memory of m's structs and of its lists' and maps'
// slots, without the text of its strings and bytes. It reads no list of
// strings element by element (protoreflect's Get allocates for each).
func shapeSize(m protoreflect.Message) int64 {
	n := int64(reflect.TypeOf(m.Interface()).Elem().Size())
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			// An entry's key and value headers and the map's slots and
			// groups for them: ~80 B, measured for maps of up to
			// MaxLabels strings.
			n += 80 * int64(v.Map().Len())
			if k := fd.MapValue().Kind(); k == protoreflect.MessageKind || k == protoreflect.GroupKind {
				v.Map().Range(func(_ protoreflect.MapKey, e protoreflect.Value) bool {
					n += shapeSize(e.Message())
					return true
				})
			}
		case fd.IsList():
			l := v.List()
			switch fd.Kind() {
			case protoreflect.MessageKind, protoreflect.GroupKind:
				for i := range l.Len() {
					n += 8 + shapeSize(l.Get(i).Message())
				}
			case protoreflect.StringKind, protoreflect.BytesKind:
				n += 16 * int64(l.Len())
			default:
				n += 8 * int64(l.Len())
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			n += shapeSize(v.Message())
		}
		return true
	})
	return n
}
