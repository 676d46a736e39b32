package pg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/store"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Channel is the PostgreSQL notification channel on which every commit
// that stores or updates events is announced, as "writer seq": a
// position, never the events (a payload holds at most 8000 bytes).
const Channel = "oomwatch_commits"

// FollowPage is how many events Follow reads, and hands on, at once: what
// it holds in memory however far behind it is.
const FollowPage = 500

// ListenerName is the application_name of Follow's listening connection
// (pg_stat_activity shows it).
const ListenerName = "oomwatch-listen"

// Follow's reconnection delays: the first, and the most.
const (
	followRetry    = 100 * time.Millisecond
	followRetryMax = 5 * time.Second
)

// writerSeq is one commit of one writer.
type writerSeq struct {
	writer string
	seq    int64
}

// newWriter returns a random writer name.
func newWriter() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("writer name: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// announce records a commit as its writer's last and notifies the
// listeners; both take effect when the transaction commits.
func announce(ctx context.Context, tx pgx.Tx, w writerSeq) error {
	// One round trip: the commit waits for it.
	if _, err := tx.Exec(ctx, `WITH up AS (
	INSERT INTO writers (writer, seq, updated) VALUES ($1, $2, $3)
	ON CONFLICT (writer) DO UPDATE SET seq = excluded.seq, updated = excluded.updated
	RETURNING 1)
SELECT pg_notify($4, $5) FROM up`,
		w.writer, w.seq, time.Now().UnixNano(), Channel, w.writer+" "+strconv.FormatInt(w.seq, 10)); err != nil {
		return fmt.Errorf("announce commit: %w", err)
	}
	return nil
}

// position is how far a follower has read one writer's rows: its commit
// and, within it, the place in the commit's batch (a commit is read in
// pages, in the order of its batch).
type position struct {
	seq int64
	pos int32
}

// follower is one Follow call.
type follower struct {
	s       *Store
	publish func([]*pb.Event)
	// wanted says whether the events are to be read (nil: always).
	wanted func() bool
	// seen is owned by fetch once it runs.
	seen map[string]position
	mu   sync.Mutex
	// pending are the writers that may have committed past seen, with
	// the last commit known of each: bounded by the number of writers,
	// however many notifications come.
	pending map[string]int64
	wake    chan struct{}
}

// Follow hands publish the events that the other Stores on this database
// (the other replicas; each Open is a writer of its own) store or update
// from Follow's start on, until ctx ends; it returns nil then. Each
// writer's events come in its commit order, each stored revision once
// (a revision replaced before Follow read it is skipped: the newer one
// comes), at most FollowPage at a time; publish must not block. ready is
// called once, when every commit from then on is sure to be handed on.
// While wanted (nil: always) says no, the commits notified are passed
// over unread: a commit notified after it says yes again is read, and one
// notified before may be.
//
// Follow LISTENs on its own connection for the commits' notifications
// (Channel) and reads the events they announce by their writer's position
// (see position), through the pool. When the listening connection is
// lost it connects again (with a growing delay) and reads every writer's
// rows past where it was: nothing committed meanwhile is lost.
func (s *Store) Follow(ctx context.Context, ready func(), wanted func() bool, publish func([]*pb.Event)) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	f := &follower{s: s, publish: publish, wanted: wanted, seen: map[string]position{}, pending: map[string]int64{}, wake: make(chan struct{}, 1)}
	conn, heads, err := f.listenRetry(ctx)
	if conn == nil {
		return err
	}
	// Every commit past these heads is notified, or read on reconnection.
	for w, seq := range heads {
		f.seen[w] = position{seq: seq, pos: math.MaxInt32}
	}
	ready()
	fetched := make(chan struct{})
	go func() {
		defer close(fetched)
		f.fetch(ctx)
	}()
	defer func() { <-fetched }()
	for {
		err := f.receive(ctx, conn)
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return nil
		}
		s.log.WithError(err).Warn("lost the connection listening for other replicas' commits; reconnecting")
		if conn, heads, err = f.listenRetry(ctx); conn == nil {
			return err
		}
		// Catch up: every writer is read past where it was.
		for w, seq := range heads {
			f.mark(w, seq)
		}
	}
}

// listenRetry connects and listens until it succeeds (nil error) or ctx
// ends (nil conn and error).
func (f *follower) listenRetry(ctx context.Context) (*pgx.Conn, map[string]int64, error) {
	delay := followRetry
	for {
		conn, heads, err := f.listen(ctx)
		if err == nil {
			return conn, heads, nil
		}
		if ctx.Err() != nil {
			return nil, nil, nil
		}
		f.s.log.WithError(err).Warn("cannot listen for other replicas' commits; retrying")
		select {
		case <-ctx.Done():
			return nil, nil, nil
		case <-time.After(delay):
		}
		delay = min(2*delay, followRetryMax)
	}
}

// listen opens the listening connection and returns it with every other
// writer's last commit, read after LISTEN took effect.
func (f *follower) listen(ctx context.Context) (*pgx.Conn, map[string]int64, error) {
	cfg := f.s.connCfg.Copy()
	cfg.RuntimeParams["application_name"] = ListenerName
	cctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	heads, err := func() (map[string]int64, error) {
		if _, err := conn.Exec(cctx, "LISTEN "+Channel); err != nil {
			return nil, err
		}
		rows, err := conn.Query(cctx, `SELECT writer, seq FROM writers WHERE writer <> $1`, f.s.writer)
		if err != nil {
			return nil, err
		}
		heads := map[string]int64{}
		var w string
		var seq int64
		_, err = pgx.ForEachRow(rows, []any{&w, &seq}, func() error {
			heads[w] = seq
			return nil
		})
		return heads, err
	}()
	if err != nil {
		conn.Close(context.Background())
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	return conn, heads, nil
}

// receive marks the writers of the notifications until the connection
// fails or ctx ends.
func (f *follower) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		w, num, ok := strings.Cut(n.Payload, " ")
		seq, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || w == f.s.writer {
			continue
		}
		f.mark(w, seq)
	}
}

// mark records that writer w committed up to commit seq.
func (f *follower) mark(w string, seq int64) {
	f.mu.Lock()
	f.pending[w] = max(f.pending[w], seq)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// take returns the pending writers and forgets them.
func (f *follower) take() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := maps.Clone(f.pending)
	clear(f.pending)
	return out
}

// fetch reads and hands on the rows of the pending writers until ctx
// ends. A writer whose reading failed is tried again after a pause.
func (f *follower) fetch(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-f.s.recheck:
			if err := f.readUnsure(ctx); err != nil && ctx.Err() == nil {
				f.s.log.WithError(err).Warn("cannot read this replica's commits of unknown outcome; watchers may miss their events")
			}
			continue
		}
		failed := false
		for w, seq := range f.take() {
			if f.seen[w].seq > seq {
				// Read past it already (a commit after it was).
				continue
			}
			if f.wanted != nil && !f.wanted() {
				// Nobody to hand them to: every commit up to seq was
				// notified before now, and is passed over unread.
				f.seen[w] = position{seq: seq, pos: math.MaxInt32}
				continue
			}
			if err := f.catchUp(ctx, w); err != nil {
				if ctx.Err() != nil {
					return
				}
				f.s.log.WithError(err).WithField("writer", w).Warn("cannot read another replica's commits; retrying")
				f.mark(w, seq)
				failed = true
			}
		}
		if failed {
			select {
			case <-ctx.Done():
				return
			case <-time.After(followRetry):
			}
		}
	}
}

// readUnsure hands on the events of this writer's commits that failed as
// far as it knew but that the database committed (see Store.unsure): the
// commit was lost with its connection, so neither this replica's watchers
// nor, when they come again, their copies (duplicates now) showed them;
// the other replicas read them as they read every commit.
func (f *follower) readUnsure(ctx context.Context) error {
	seqs := f.s.takeUnsure()
	if len(seqs) == 0 || (f.wanted != nil && !f.wanted()) {
		return nil
	}
	rows, err := f.s.pool.Query(ctx, `SELECT data FROM events WHERE writer = $1 AND wseq = ANY($2) ORDER BY wseq, wpos`, f.s.writer, seqs)
	if err != nil {
		f.s.giveBackUnsure(seqs)
		return fmt.Errorf("read commits of unknown outcome: %w", err)
	}
	var evs []*pb.Event
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&data}, func() error {
		if ev, err := store.Decode(data); err == nil {
			evs = append(evs, ev)
		}
		return nil
	})
	if err != nil {
		f.s.giveBackUnsure(seqs)
		return fmt.Errorf("read commits of unknown outcome: %w", err)
	}
	for len(evs) > 0 {
		n := min(len(evs), FollowPage)
		f.publish(evs[:n])
		evs = evs[n:]
	}
	return nil
}

// catchUp hands on writer w's rows past seen, a page at a time. A writer
// not seen before began after Follow did: all its rows are new.
func (f *follower) catchUp(ctx context.Context, w string) error {
	for {
		pos := f.seen[w]
		rows, err := f.s.pool.Query(ctx, `SELECT wseq, wpos, data FROM events
			WHERE writer = $1 AND (wseq, wpos) > ($2, $3) ORDER BY wseq, wpos LIMIT $4`, w, pos.seq, pos.pos, FollowPage)
		if err != nil {
			return fmt.Errorf("read commits of %s: %w", w, err)
		}
		var evs []*pb.Event
		var data []byte
		n := 0
		_, err = pgx.ForEachRow(rows, []any{&pos.seq, &pos.pos, &data}, func() error {
			n++
			ev, err := store.Decode(data)
			if err != nil {
				// Not one we can hand on; the next are.
				f.s.log.WithError(err).WithFields(logrus.Fields{"writer": w, "commit": pos.seq, "place": pos.pos}).Warn("undecodable event skipped")
				return nil
			}
			evs = append(evs, ev)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read commits of %s: %w", w, err)
		}
		if n > 0 {
			f.seen[w] = pos
		}
		if len(evs) > 0 {
			f.publish(evs)
		}
		if n < FollowPage {
			return nil
		}
	}
}
