//! tickvault's integration tests: the real binary (and library) against a fake Tardis server,
//! a real nginx WebDAV and moto's S3 for the remote cache tier.

mod cache_cmd; // cache stats/verify/prune, two processes sharing a cache directory
mod cli; // the command-line contract: bad input, --json, config files
mod download; // the core pipeline: exact values, merging, warm runs, cache repair, layouts
mod faults; // Tardis's answers: auth, status codes, retries, broken bodies
mod remote; // the shared remote cache through the binary: machine A/B, dead/slow/lying remotes
mod secrets; // the API key and remote token never leak
mod serve; // tickvault serve: the team's edge cache, with real clients, tokens, crashes, metrics
mod support;
mod tiers; // one conformance suite for every tier; coalescing and back-fill
