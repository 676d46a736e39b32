package deploy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A small Dockerfile parser: enough of the syntax to check oomwatch's
// Dockerfile (instructions, line continuations, comments, --flags, exec
// form), strict about what it does not know.

// Errors of parseDockerfile.
var (
	ErrUnknownInstruction = errors.New("unknown instruction")
	ErrBeforeFrom         = errors.New("instruction before the first FROM")
	ErrSyntax             = errors.New("syntax error")
)

// knownInstructions are the Dockerfile instructions.
var knownInstructions = map[string]bool{
	"FROM": true, "RUN": true, "CMD": true, "LABEL": true, "EXPOSE": true, "ENV": true, "ADD": true,
	"COPY": true, "ENTRYPOINT": true, "VOLUME": true, "USER": true, "WORKDIR": true, "ARG": true,
	"ONBUILD": true, "STOPSIGNAL": true, "HEALTHCHECK": true, "SHELL": true, "MAINTAINER": true,
}

// instruction is one Dockerfile instruction.
type instruction struct {
	Line  int               // first line
	Cmd   string            // upper case
	Flags map[string]string // leading --name[=value] options
	Rest  string            // what follows the flags, continuation lines joined
	Exec  []string          // Rest as a JSON array (exec form), nil otherwise
}

// Words splits Rest as a shell would (quotes, no expansion).
func (in instruction) Words() ([]string, error) { return shellWords(in.Rest) }

// stage is a build stage: its FROM and what follows.
type stage struct {
	Name  string // from "AS name"; "" when unnamed
	Base  string
	Index int
	Body  []instruction
}

// parseDockerfile parses r into its stages.
func parseDockerfile(r io.Reader) ([]stage, error) {
	var stages []stage
	sc := bufio.NewScanner(r)
	line := 0
	for {
		in, ok, err := nextInstruction(sc, &line)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if in.Cmd == "FROM" {
			w, err := in.Words()
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", in.Line, err)
			}
			st := stage{Index: len(stages)}
			switch {
			case len(w) == 1:
				st.Base = w[0]
			case len(w) == 3 && strings.EqualFold(w[1], "AS"):
				st.Base, st.Name = w[0], strings.ToLower(w[2])
			default:
				return nil, fmt.Errorf("line %d: FROM %s: %w", in.Line, in.Rest, ErrSyntax)
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.Cmd == "ARG" {
				continue
			}
			return nil, fmt.Errorf("line %d: %s: %w", in.Line, in.Cmd, ErrBeforeFrom)
		}
		stages[len(stages)-1].Body = append(stages[len(stages)-1].Body, in)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return stages, nil
}

// nextInstruction reads one logical instruction, skipping blank lines and
// comments and joining lines that end in a backslash.
func nextInstruction(sc *bufio.Scanner, line *int) (instruction, bool, error) {
	var text strings.Builder
	start := 0
	for sc.Scan() {
		*line++
		l := strings.TrimSpace(sc.Text())
		// Blank and comment lines are skipped, inside a continuation too,
		// as BuildKit does.
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if start == 0 {
			start = *line
		}
		if body, ok := strings.CutSuffix(l, `\`); ok {
			text.WriteString(strings.TrimSpace(body))
			text.WriteByte(' ')
			continue
		}
		text.WriteString(l)
		break
	}
	if start == 0 {
		return instruction{}, false, nil
	}
	cmd, rest, _ := strings.Cut(strings.TrimSpace(text.String()), " ")
	in := instruction{Line: start, Cmd: strings.ToUpper(cmd), Flags: map[string]string{}}
	if !knownInstructions[in.Cmd] {
		return in, false, fmt.Errorf("line %d: %q: %w", start, cmd, ErrUnknownInstruction)
	}
	rest = strings.TrimSpace(rest)
	switch in.Cmd {
	case "FROM", "COPY", "ADD", "RUN":
		for strings.HasPrefix(rest, "--") {
			opt, after, _ := strings.Cut(rest, " ")
			name, value, _ := strings.Cut(strings.TrimPrefix(opt, "--"), "=")
			in.Flags[name] = value
			rest = strings.TrimSpace(after)
		}
	}
	in.Rest = rest
	if strings.HasPrefix(rest, "[") {
		var exec []string
		if err := json.Unmarshal([]byte(rest), &exec); err == nil {
			in.Exec = exec
		}
	}
	if in.Rest == "" {
		return in, false, fmt.Errorf("line %d: %s without arguments: %w", start, in.Cmd, ErrSyntax)
	}
	return in, true, nil
}

// shellWords splits s into words: whitespace separates, single quotes
// keep everything, double quotes keep everything but backslash escapes.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unclosed ' in %q: %w", s, ErrSyntax)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unclosed \" in %q: %w", s, ErrSyntax)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func TestParseDockerfile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // stages as "name<base>: CMD[flags] rest | ..."
		wantErr error
	}{
		{
			name: "stages, flags, continuation, exec form",
			in:   "# syntax=docker/dockerfile:1\nARG GO=1.26\nFROM golang:1.26 AS Build\nRUN go build \\\n  -o /out/ \\\n  # a comment inside\n  ./a\n\nFROM scratch AS a\nCOPY --from=build --chmod=0755 /out/a /a\nENTRYPOINT [\"/a\"]\n",
			want: "build<golang:1.26>: RUN go build -o /out/ ./a | a<scratch>: COPY[chmod=0755 from=build] /out/a /a, ENTRYPOINT [\"/a\"]",
		},
		{name: "unnamed stage", in: "FROM scratch\nUSER 0\n", want: "<scratch>: USER 0"},
		{name: "unknown instruction", in: "FROM scratch\nCOPPY a b\n", wantErr: ErrUnknownInstruction},
		{name: "instruction before FROM", in: "RUN true\nFROM scratch\n", wantErr: ErrBeforeFrom},
		{name: "bad FROM", in: "FROM a b c d\n", wantErr: ErrSyntax},
		{name: "no arguments", in: "FROM scratch\nUSER\n", wantErr: ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stages, err := parseDockerfile(strings.NewReader(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := describeStages(stages); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func describeStages(stages []stage) string {
	var parts []string
	for _, st := range stages {
		var ins []string
		for _, in := range st.Body {
			s := in.Cmd
			if len(in.Flags) > 0 {
				var fl []string
				for k, v := range in.Flags {
					fl = append(fl, k+"="+v)
				}
				slices.Sort(fl)
				s += "[" + strings.Join(fl, " ") + "]"
			}
			ins = append(ins, s+" "+in.Rest)
		}
		parts = append(parts, st.Name+"<"+st.Base+">: "+strings.Join(ins, ", "))
	}
	return strings.Join(parts, " | ")
}

func TestShellWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{in: `go build -trimpath -ldflags='-s -w' -o /out/ ./a`, want: []string{"go", "build", "-trimpath", "-ldflags=-s -w", "-o", "/out/", "./a"}},
		{in: `a "b c" d\ e`, want: []string{"a", "b c", "d e"}},
		{in: `a "b \"c\""`, want: []string{"a", `b "c"`}},
		{in: `a 'b`, err: true},
		{in: `a "b`, err: true},
		{in: ``, want: nil},
	}
	for _, tt := range tests {
		got, err := shellWords(tt.in)
		if (err != nil) != tt.err || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q, err %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// FuzzParseDockerfile checks that the parser never panics, and that what
// it accepts has a FROM first.
func FuzzParseDockerfile(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err == nil {
		f.Add(string(b))
	}
	f.Add("FROM a AS b\nRUN x \\\n y\nCOPY --from=b /a /b\n")
	f.Fuzz(func(t *testing.T, s string) {
		stages, err := parseDockerfile(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, st := range stages {
			if st.Base == "" {
				t.Fatalf("stage %d without a base", st.Index)
			}
			for _, in := range st.Body {
				if in.Cmd == "FROM" || !knownInstructions[in.Cmd] {
					t.Fatalf("instruction %q in a stage body", in.Cmd)
				}
				_, _ = in.Words()
			}
		}
	})
}
