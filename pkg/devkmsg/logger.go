package devkmsg

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/sirupsen/logrus"
)

// parserLogger routes one kmsgparser instance's log lines into logrus and
// remembers the error that stopped it, so Run can say why it reopens.
type parserLogger struct {
	log *logrus.Entry
	// closing is set once we close the parser ourselves; the read error that
	// follows is expected and only worth a Debug line.
	closing atomic.Bool

	mu  sync.Mutex
	err error
}

var _ kmsgparser.Logger = (*parserLogger)(nil)

// Infof logs at Debug: kmsgparser's only Info line is "reader closed".
func (l *parserLogger) Infof(format string, args ...any) {
	l.log.Debugf(format, args...)
}

// Warningf logs at Warn: kmsgparser warns when it drops a record it cannot
// parse (Run also reports the hole as a Gap).
func (l *parserLogger) Warningf(format string, args ...any) {
	l.log.Warnf(format, args...)
}

// Errorf records the error argument that stopped the parser. kmsgparser
// logs an error exactly when its read loop ends; Run logs the outcome
// (reopen, Gap), so only unexpected errors are logged here above Debug.
func (l *parserLogger) Errorf(format string, args ...any) {
	var cause error
	for _, a := range args {
		if err, ok := a.(error); ok {
			cause = err
			break
		}
	}
	if cause != nil {
		l.mu.Lock()
		l.err = cause
		l.mu.Unlock()
	}
	if l.closing.Load() || errors.Is(cause, syscall.EPIPE) {
		l.log.Debugf(format, args...)
		return
	}
	l.log.Warnf(format, args...)
}

// cause returns the error that stopped the parser, or ErrParserStopped.
func (l *parserLogger) cause() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		return ErrParserStopped
	}
	return l.err
}
