//! tickvault's integration tests: the real binary against a fake Tardis server (and a real
//! nginx for the remote cache tier).

mod cli; // the command-line contract: bad input, --json, config files
mod download; // the core pipeline: exact values, merging, warm runs, cache repair, layouts
mod faults; // Tardis's answers: auth, status codes, retries, broken bodies
mod secrets; // the API key and remote token never leak
mod support;
