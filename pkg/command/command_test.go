package command

import (
	"bytes"
	"errors"
	"flag"
	"runtime/debug"
	"strings"
	"testing"
)

type opts struct {
	node  string
	count int
}

func (o *opts) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.node, "node-name", "", "")
	fs.IntVar(&o.count, "count", 1, "")
}

func (o *opts) Validate() error {
	if o.node == "" {
		return errors.New("--node-name is required")
	}
	return nil
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		defaults func(*opts)
		code     int
		says     string // on stderr
	}{
		{"ok", []string{"--node-name=n1"}, nil, nil, ExitOK, ""},
		{"from the environment", nil, map[string]string{"OOMWATCH_NODE_NAME": "n1"}, nil, ExitOK, ""},
		{"a default from elsewhere", nil, nil, func(o *opts) { o.node = "from-NODE_NAME" }, ExitOK, ""},
		{"a bad variable is said, not swallowed", []string{"--node-name=n1"}, map[string]string{"OOMWATCH_COUNT": "many"}, nil, ExitUsage,
			`agent: OOMWATCH_COUNT="many": `},
		{"an invalid value is said", nil, nil, nil, ExitUsage, "agent: --node-name is required"},
		{"an unknown flag is said once", []string{"--nope"}, nil, nil, ExitUsage, "flag provided but not defined: -nope"},
		{"help", []string{"-h"}, nil, nil, ExitOK, "-node-name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o opts
			var stderr bytes.Buffer
			var def func()
			if tc.defaults != nil {
				def = func() { tc.defaults(&o) }
			}
			err := Parse("agent", &o, tc.args, func(k string) string { return tc.env[k] }, &stderr, def)
			if got := ExitCode(err); got != tc.code {
				t.Errorf("exit %d (%v), want %d", got, err, tc.code)
			}
			if out := stderr.String(); (tc.says == "") != (out == "") || !strings.Contains(out, tc.says) ||
				strings.Count(out, "not defined") > 1 {
				t.Errorf("stderr %q, want it to say %q", out, tc.says)
			}
		})
	}
}

func TestLogger(t *testing.T) {
	var b bytes.Buffer
	l := Logger("debug")
	l.SetOutput(&b)
	l.Debug("x")
	if !strings.HasPrefix(b.String(), `{"level":"debug"`) {
		t.Errorf("log line %q, want JSON at debug", b.String())
	}
	if Logger("nonsense").GetLevel().String() != "info" {
		t.Error("an unknown level is not info")
	}
}

func TestGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct {
		name, gogc string
		want       int
	}{
		{name: "unset", gogc: "", want: 50},
		{name: "GOGC wins", gogc: "200", want: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// GOGC as the runtime read it at start.
			debug.SetGCPercent(200)
			got := GCPercent(func(k string) string {
				if k == "GOGC" {
					return tc.gogc
				}
				return ""
			}, 50)
			if got != tc.want {
				t.Errorf("GCPercent = %d, want %d", got, tc.want)
			}
			if now := debug.SetGCPercent(100); now != tc.want {
				t.Errorf("the collector's target is %d, want %d", now, tc.want)
			}
		})
	}
}
