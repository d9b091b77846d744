//! tickvault's integration tests: the real binary (and library) against a fake Tardis server,
//! a real nginx WebDAV and moto's S3 for the remote cache tier, and real Parquet readers.

mod bars; // tickvault bars: exact against a plain fold, cached in every tier, remote-only, unexported days
mod cache_cmd; // cache stats/verify/prune, two processes sharing a cache directory
mod cli; // the command-line contract: bad input, --json, config files
mod completeness; // days not yet exported: exit 3, --wait, --allow-incomplete
mod download; // the core pipeline: exact values, merging, warm runs, cache repair, layouts
mod faults; // Tardis's answers: auth, status codes, retries, broken bodies
mod lake; // the partitioned lake through pyarrow, polars and DuckDB
mod metadata; // the request checked against Tardis's metadata; `tickvault exchanges`
mod options; // every option by flag, env and file, from the one option list
mod outputs; // outputs never clobber: names, refusals, --overwrite, concurrent writers
mod processes; // processes sharing a cache fetch each chunk once
mod progress; // the bar in a pseudo-terminal moves while a body streams
mod readme; // README's crontab line and CI step, run as written
mod reliability; // a hostile world: storms, SIGKILL, full disks, bombs, forgeries, echoed secrets
mod remote; // the shared remote cache through the binary: machine A/B, dead/slow/lying remotes
mod secrets; // the API key and remote token never leak
mod serve; // tickvault serve: the team's edge cache, with real clients, tokens, crashes, metrics
mod shard; // --shard K/N and auto over S3 (moto), the final offline merge, --max-transfer
mod store_output; // -o s3://…: outputs on object stores, never partial, no-op re-runs
mod support;
mod tiers; // one conformance suite for every tier; coalescing and back-fill
mod unattended; // jobs, config discovery, relative dates, logs, --dry-run, JSON failures, completions
