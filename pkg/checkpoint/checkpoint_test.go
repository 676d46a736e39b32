package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var when = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func TestSaveLoad(t *testing.T) {
	tests := []struct {
		name  string
		state State
	}{
		{"seq", State{BootID: "8f1c2d3e-0000-4000-8000-000000000001", Seq: 12345, Updated: when}},
		{"nothing handled", State{BootID: "b1", Seq: -1, Updated: when}},
		{"zero", State{BootID: "b1", Seq: 0, Updated: when}},
		{"quotes in boot ID", State{BootID: `b"1\`, Seq: 1 << 40, Updated: when}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// Over an older checkpoint and a leftover temporary file.
			if err := Save(dir, State{BootID: "old", Seq: 7}); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, FileName+".tmp"), []byte("half"), 0o600)
			if err := Save(dir, tt.state); err != nil {
				t.Fatal(err)
			}
			got, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.BootID != tt.state.BootID || got.Seq != tt.state.Seq || !got.Updated.Equal(tt.state.Updated) {
				t.Fatalf("Load = %+v, want %+v", got, tt.state)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("files left: %v", ents)
			}
		})
	}
}

func TestSaveSetsTime(t *testing.T) {
	dir := t.TempDir()
	before := time.Now()
	if err := (Recorder{Dir: dir, BootID: "b1"}).Save(42); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.BootID != "b1" || got.Seq != 42 || got.Updated.Before(before.Add(-time.Second)) {
		t.Fatalf("Load = %+v", got)
	}
}

func TestLoadMissing(t *testing.T) {
	got, err := Load(t.TempDir())
	if err != nil || got.Seq != -1 || got.BootID != "" {
		t.Fatalf("Load of an empty dir = %+v, %v", got, err)
	}
	if got.After("b1") != -1 {
		t.Error("fresh state resumes somewhere")
	}
}

func TestLoadErrors(t *testing.T) {
	good, err := Marshal(State{BootID: "b1", Seq: 99, Updated: when})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := []byte(strings.Clone(string(good)))
		b[i] ^= 0x01
		return b
	}
	seqAt := strings.Index(string(good), `99`)
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)/2]},
		{"truncated before the newline and brace", good[:len(good)-2]},
		{"digit flipped", flip(seqAt)},
		{"garbage", []byte("\x00\xff\x13garbage")},
		{"two objects", append(append([]byte{}, good...), good...)},
		{"unknown field", []byte(`{"version":1,"state":{"boot_id":"b1","seq":1,"updated":"2026-03-01T12:00:00Z"},"crc32c":0,"x":1}`)},
		{"wrong version", []byte(strings.Replace(string(good), `"version":1`, `"version":2`, 1))},
		{"no checksum", []byte(`{"version":1,"state":{"boot_id":"b1","seq":1,"updated":"2026-03-01T12:00:00Z"}}`)},
		{"wrong checksum", []byte(`{"version":1,"state":{"boot_id":"b1","seq":1,"updated":"2026-03-01T12:00:00Z"},"crc32c":1}`)},
		{"array", []byte(`[]`)},
		{"null", []byte(`null`)},
		{"too large", make([]byte, maxFileSize+10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := Load(dir)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load = %+v, %v; want ErrCorrupt", got, err)
			}
			if got != Fresh() {
				t.Errorf("Load returned %+v with the error, want the fresh state", got)
			}
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, FileName), 0o700)
		got, err := Load(dir)
		if err == nil || errors.Is(err, ErrCorrupt) || got != Fresh() {
			t.Fatalf("Load of a directory = %+v, %v", got, err)
		}
	})
}

func TestSaveErrors(t *testing.T) {
	if err := Save(filepath.Join(t.TempDir(), "missing"), State{BootID: "b1"}); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
	// A save that fails (here the temporary file cannot be created) leaves
	// the previous checkpoint as it was.
	dir := t.TempDir()
	if err := Save(dir, State{BootID: "b1", Seq: 7}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, FileName+".tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, State{BootID: "b1", Seq: 9}); err == nil {
		t.Fatal("Save succeeded without its temporary file")
	}
	if s, err := Load(dir); err != nil || s.Seq != 7 {
		t.Fatalf("after a failed save Load = %+v, %v; want seq 7", s, err)
	}
}

func TestAfter(t *testing.T) {
	tests := []struct {
		name  string
		state State
		boot  string
		want  int64
	}{
		{"same boot", State{BootID: "b1", Seq: 10}, "b1", 10},
		{"reboot", State{BootID: "b1", Seq: 10}, "b2", -1},
		{"fresh", Fresh(), "b1", -1},
		{"no boot ID saved", State{Seq: 10}, "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.state.After(tt.boot); got != tt.want {
				t.Errorf("After(%q) = %d, want %d", tt.boot, got, tt.want)
			}
		})
	}
}

// FuzzParse: Parse never panics; what it accepts round-trips.
func FuzzParse(f *testing.F) {
	good, _ := Marshal(State{BootID: "b1", Seq: 99, Updated: when})
	f.Add(good)
	f.Add(good[:20])
	f.Add([]byte(`{"version":1,"state":{},"crc32c":0}`))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || s != Fresh() {
				t.Fatalf("Parse error %v with state %+v", err, s)
			}
			return
		}
		if s.Seq < -1 {
			t.Fatalf("accepted seq %d", s.Seq)
		}
		again, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := Parse(again)
		if err != nil || s2.BootID != s.BootID || s2.Seq != s.Seq || !s2.Updated.Equal(s.Updated) {
			t.Fatalf("round trip %+v -> %+v, %v", s, s2, err)
		}
	})
}
