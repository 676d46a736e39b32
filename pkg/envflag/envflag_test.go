package envflag

import (
	"flag"
	"io"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantN   int
		wantErr bool
	}{
		{name: "default", want: "d", wantN: 1},
		{name: "env", env: map[string]string{"OOMWATCH_NODE_NAME": "e", "OOMWATCH_COUNT": "3"}, want: "e", wantN: 3},
		{name: "flag wins", args: []string{"--node-name=f"}, env: map[string]string{"OOMWATCH_NODE_NAME": "e"}, want: "f", wantN: 1},
		{name: "bad env value", env: map[string]string{"OOMWATCH_COUNT": "x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			s := fs.String("node-name", "d", "")
			n := fs.Int("count", 1, "")
			err := Parse(fs, tt.args, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (*s != tt.want || *n != tt.wantN) {
				t.Fatalf("got %q %d, want %q %d", *s, *n, tt.want, tt.wantN)
			}
		})
	}
	if Name("tls-ca") != "OOMWATCH_TLS_CA" {
		t.Fatal(Name("tls-ca"))
	}
}
