#!/usr/bin/env bash
# Compares oomwatch's kernel-record path with cAdvisor's OOM parser and
# node-problem-detector's OOMKilling rule, in one process, and prints one
# table (see BENCHMARKS.md at the repository root). `make bench` runs it.
#
#   BENCH_SHORT=1 ./bench/run.sh   small inputs, one round, no VM, the
#                                  aggregator's ingest and query hooks in a
#                                  tiny configuration, on SQLite and on
#                                  PostgreSQL: only proves they run, and
#                                  fails when a hook fails (the CI smoke
#                                  test, about 1.5 minutes; PostgreSQL is
#                                  installed with apt-get when missing)
#   ./bench/run.sh                 the full comparison: 1M-record inputs, three
#                                  rounds, the real-kernel rows, the agent
#                                  footprint and the end-to-end latency in
#                                  qemu, the aggregator's ingest (1,000
#                                  streams; SQLite, PostgreSQL with 1 and 3
#                                  aggregators) and query (1M events, on
#                                  both) hooks (root; ~25 minutes)
#
# Extra arguments go to cmd/benchtable (-rounds, -benchtime, -hooks, -out,
# ...); each flag can also be set as OOMWATCH_<FLAG>, e.g. OOMWATCH_HOOKS=none.
set -euo pipefail
cd "$(dirname "$0")"

args=(-repo-root ..)
if [ "${BENCH_SHORT:-0}" = 1 ]; then
	args+=(-short -hooks ingest,query)
else
	args+=(-artifacts out)
fi

# The scoring and emulation tests are quick; a table from broken parsers
# would be worse than none.
go test -count=1 ./...
go run ./cmd/benchtable "${args[@]}" "$@"
