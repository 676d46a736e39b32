package vm

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// block renders data as the guest's export_file does: gzip, then base64
// wrapped at 76 columns.
func block(name string, data []byte) string {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(data)
	_ = zw.Close()
	enc := base64.StdEncoding.EncodeToString(gz.Bytes())
	var b strings.Builder
	fmt.Fprintf(&b, "=====BEGIN %s %d=====\n", name, len(data))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\n=====END " + name + "=====\n")
	return b.String()
}

func TestParseExports(t *testing.T) {
	all := make([]byte, 256*40)
	for i := range all {
		all[i] = byte(i)
	}
	good := block("kmsg", []byte("6,1,0,-;Linux version\n"))
	tests := []struct {
		name     string
		raw      string
		files    map[string]string // name -> contents
		bad      []string          // names that must fail with ErrCorrupt
		code     int
		exited   bool
		notFound string
	}{
		{name: "empty", raw: "", code: -1, notFound: "kmsg"},
		{name: "exit only", raw: "=====EXIT 0=====\n", code: 0, exited: true},
		{
			name:  "two files and exit",
			raw:   good + block("bin", all) + "=====EXIT 137=====\n",
			files: map[string]string{"kmsg": "6,1,0,-;Linux version\n", "bin": string(all)},
			code:  137, exited: true,
		},
		{
			name:  "CRLF line ends",
			raw:   strings.ReplaceAll(good+"=====EXIT 3=====\n", "\n", "\r\n"),
			files: map[string]string{"kmsg": "6,1,0,-;Linux version\n"},
			code:  3, exited: true,
		},
		{
			name:  "empty file",
			raw:   block("e", nil),
			files: map[string]string{"e": ""},
			code:  -1,
		},
		{
			name: "truncated at power off",
			raw:  good[:len(good)-30],
			bad:  []string{"kmsg"}, code: -1,
		},
		{
			name: "size mismatch",
			raw:  strings.Replace(good, "kmsg 22", "kmsg 23", 1),
			bad:  []string{"kmsg"}, code: -1,
		},
		{
			name:  "new BEGIN before END",
			raw:   "=====BEGIN a 3=====\nAAAA\n" + good,
			files: map[string]string{"kmsg": "6,1,0,-;Linux version\n"},
			bad:   []string{"a"}, code: -1,
		},
		{
			name: "garbage base64",
			raw:  "=====BEGIN g 3=====\n!!!!\n=====END g=====\n",
			bad:  []string{"g"}, code: -1,
		},
		{
			name: "EXIT inside a block is data",
			raw:  "=====BEGIN g 3=====\n=====EXIT 0=====\n",
			bad:  []string{"g"}, code: -1,
		},
		{
			name: "noise ignored", raw: "junk\n=====nonsense=====\n=====EXIT x=====\n=====EXIT 1=====\n",
			code: 1, exited: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, code, exited := parseExports([]byte(tt.raw))
			r := &Result{exports: files}
			if code != tt.code || exited != tt.exited {
				t.Errorf("exit = %d, %v; want %d, %v", code, exited, tt.code, tt.exited)
			}
			for name, want := range tt.files {
				got, err := r.File(name)
				if err != nil || string(got) != want {
					t.Errorf("File(%q) = %d bytes, %v; want %d bytes", name, len(got), err, len(want))
				}
			}
			for _, name := range tt.bad {
				if _, err := r.File(name); !errors.Is(err, ErrCorrupt) {
					t.Errorf("File(%q) error = %v, want ErrCorrupt", name, err)
				}
			}
			if len(r.FileNames()) != len(tt.files)+len(tt.bad) {
				t.Errorf("FileNames() = %q", r.FileNames())
			}
			if tt.notFound != "" {
				if _, err := r.File(tt.notFound); !errors.Is(err, ErrNoFile) {
					t.Errorf("File(%q) error = %v, want ErrNoFile", tt.notFound, err)
				}
			}
		})
	}
}

func FuzzParseExports(f *testing.F) {
	f.Add([]byte(block("kmsg", []byte("6,1,0,-;x\n")) + "=====EXIT 0=====\n"))
	f.Add([]byte("=====BEGIN a 1=====\nAA==\n=====END a=====\n"))
	f.Add([]byte("=====BEGIN a x=====\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		files, code, exited := parseExports(raw)
		if !exited && code != -1 {
			t.Errorf("code %d without an EXIT line", code)
		}
		for name, e := range files {
			if (e.err == nil) == (e.data == nil) {
				t.Errorf("export %q: want exactly one of data and error", name)
			}
			if e.err != nil && !errors.Is(e.err, ErrCorrupt) {
				t.Errorf("export %q: error %v does not wrap ErrCorrupt", name, e.err)
			}
		}
	})
}
