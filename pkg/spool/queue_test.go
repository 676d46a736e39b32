package spool

import (
	"github.com/oomwatch/oomwatch/pkg/sender"
)

// The sender drains a spool.
var _ sender.Queue = (*Spool)(nil)
