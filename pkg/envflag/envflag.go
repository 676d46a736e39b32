// Package envflag lets every command-line flag also be set from an
// environment variable: --node-name from OOMWATCH_NODE_NAME, and so on. A
// flag given on the command line wins over the environment.
package envflag

import (
	"flag"
	"fmt"
	"strings"
)

// Prefix is the environment prefix of oomwatch's flags.
const Prefix = "OOMWATCH_"

// Name returns the variable that sets a flag: OOMWATCH_ and the flag's
// name upper-cased with '-' and '.' as '_'.
func Name(flagName string) string {
	return Prefix + strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(flagName))
}

// Parse parses args into fs, then sets every flag not given on the command
// line from its environment variable, read with getenv.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return FromEnv(fs, getenv)
}

// FromEnv sets every flag of fs not given on the command line from its
// environment variable, read with getenv. Call it after fs.Parse.
func FromEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v := getenv(Name(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", Name(f.Name), v, e)
			}
		}
	})
	return err
}
